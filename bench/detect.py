r"""Face detection and alignment of whole photos: the graph (faces/align_graph.py)
against the mtcnn package's Python loop (align.Detector + align.warp_face), on the
same photos in one run. Prints two tables: agreement and speed.

  python bench/detect.py --data_dir=../shared/data/celeba-mini-wild [--num=588]

Agreement is measured on the same decoded pixels (Pillow, EXIF applied): the photos
with a face in one and not the other; for the face each keeps, the box IoU and the
largest point distance; the aligned faces' mean absolute difference in grey levels.
Speed is photos/s from the JPEG file's bytes to the aligned face, one process: the
package's loop (Pillow decoding, detection, warp) and the graph (JPEG decoding in
the graph) with 1 and 2 threads calling one session.
"""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from siamese_graph.data import photos as photos_lib  # noqa: E402
from siamese_graph.faces import align, align_graph, mtcnn_nets  # noqa: E402

flags.DEFINE_string("data_dir", None, "celeba-mini-wild (img_celeba/) or a folder of photos.")
flags.DEFINE_integer("num", 0, "Photos (the first N by name; 0: all).")
FLAGS = flags.FLAGS


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def machine():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    bf16 = "avx512_bf16" in out
    return "%s, %d cores%s" % (model[0] if model else "?", os.cpu_count(), ", avx512_bf16" if bf16 else "")


def main(argv):
    del argv
    import tensorflow as tf

    v1 = tf.compat.v1
    folder = os.path.join(FLAGS.data_dir, "img_celeba")
    folder = folder if os.path.isdir(folder) else FLAGS.data_dir
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
    names = names[:FLAGS.num] if FLAGS.num else names
    paths = [os.path.join(folder, n) for n in names]
    weights = {k: mtcnn_nets.weights(k) for k in ("pnet", "rnet", "onet")}
    graph = tf.Graph()
    with graph.as_default():
        pixels = v1.placeholder(tf.uint8, [None, None, 3])
        encoded = v1.placeholder(tf.string, [])
        on_pixels = align_graph.find_and_align(pixels, weights=weights, pads=())  # MTCNN as the package runs it
        retrying = align_graph.find_and_align(pixels, weights=weights)  # and with the commands' retries
        on_bytes = align_graph.find_and_align(tf.io.decode_jpeg(encoded, channels=3), weights=weights)
    sess = v1.Session(graph=graph)

    # agreement, on the same pixels
    detector = align.Detector()
    differ, ious, dists, mads, both, retried = [], [], [], [], 0, []
    for path in paths:
        rgb = photos_lib.to_rgb(photos_lib.read(path)[1])
        want = detector.detect(rgb)
        got, again = sess.run([on_pixels, retrying], {pixels: rgb})
        if again["found"] and not got["found"]:
            retried.append(os.path.basename(path))
        if bool(want) != bool(got["found"]):
            differ.append(os.path.basename(path))
            continue
        if want:
            both += 1
            ious.append(_iou(want[0].box, got["box"]))
            dists.append(np.abs(want[0].points - got["points"]).max())
            mads.append(np.abs(align.warp_face(rgb, want[0]).astype(float) - got["aligned"]).mean())
    ious, dists, mads = np.array(ious), np.array(dists), np.array(mads)
    print("\nMachine: %s\n" % machine())
    print("| agreement on %d photos | value |" % len(paths))
    print("|---|---|")
    print("| photos with a face in one only | %d %s |" % (len(differ), " ".join(differ[:5])))
    print("| faces in both | %d |" % both)
    print("| more photos with a face with the commands' retries (a border, detect_retrying) | %d %s |"
          % (len(retried), " ".join(retried[:5])))
    print("| kept-face box IoU >= 0.9 | %.1f%% (min %.3f) |" % (100 * (ious >= 0.9).mean(), ious.min()))
    print("| points within 2 px | %.1f%% (max %.2f px) |" % (100 * (dists <= 2).mean(), dists.max()))
    print("| aligned faces, mean abs. difference | %.2f grey levels (%.1f%% within 2, max %.2f) |"
          % (mads.mean(), 100 * (mads <= 2).mean(), mads.max()))

    # speed, bytes in, aligned face out
    datas = [open(p, "rb").read() for p in paths]
    start = time.time()
    for path in paths:
        rgb = photos_lib.to_rgb(photos_lib.read(path)[1])
        faces = detector.detect(rgb)
        if faces:
            align.warp_face(rgb, faces[0])
    package = len(paths) / (time.time() - start)
    sess.run(on_bytes, {encoded: datas[0]})
    rates = {}
    for threads in (1, 2):
        start = time.time()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda d: sess.run(on_bytes["aligned"], {encoded: d}), datas))
        rates[threads] = len(paths) / (time.time() - start)
    print("\n| whole photo -> aligned face, one process | photos/s | ratio |")
    print("|---|---|---|")
    print("| mtcnn package's loop (align.Detector + warp_face) | %.1f | 1.0 |" % package)
    for threads, rate in rates.items():
        print("| graph (align_graph.find_and_align), %d thread%s | %.1f | %.1f |"
              % (threads, "s" if threads > 1 else "", rate, rate / package))


if __name__ == "__main__":
    flags.mark_flag_as_required("data_dir")
    app.run(main)
