r"""The exported SavedModel against real and hostile photos, through TensorFlow's own
client (`saved_model_cli run`), one process per input: what it answers, its time
and its peak memory. Prints a table.

  python bench/served_inputs.py --saved_model=exported/siamese/1 --out_dir=/tmp/served [--photos=A.jpg,B.jpg]

Each input is sent as image_a of `verify` with a real whole photo as image_b (the
`_aligned` rows: to verify_aligned, with the photos' aligned faces). The
baseline row (two real photos) is what loading TensorFlow and the model costs;
a hostile input should cost no more than a photo does.
"""
import io
import os
import struct
import subprocess
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from siamese_graph.data import photos as photos_lib  # noqa: E402
from siamese_graph.faces import align_graph  # noqa: E402

flags.DEFINE_string("saved_model", None, "An exported version folder (OUTPUT_DIR/N).")
flags.DEFINE_string("out_dir", None, "Where the inputs and .npy files are written (a new folder).")
flags.DEFINE_list("photos", ["../shared/data/celeba-mini-wild/img_celeba/182709.jpg",
                             "../shared/data/celeba-mini-wild/img_celeba/182734.jpg"],
                  "Two whole photos of one person.")
flags.DEFINE_integer("gif_frames", 180, "Frames of the animated GIF (4000 x 4000 each).")
FLAGS = flags.FLAGS


def _encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _palette_image(side, colour):
    im = Image.new("P", (side, side), colour)
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    return im


def hostile_inputs(real):
    """{name: bytes}: what the reliability issue's probe sent, and blank pictures."""
    out = {}
    out["black JPEG 400x300"] = _encode(Image.new("RGB", (400, 300)), "JPEG")
    out["noise PNG 400x300"] = _encode(Image.fromarray(np.random.RandomState(0).randint(
        0, 256, (300, 400, 3)).astype(np.uint8)), "PNG")
    rgba = np.dstack([np.asarray(Image.open(io.BytesIO(real)).convert("RGB")),
                      np.zeros(Image.open(io.BytesIO(real)).size[::-1], np.uint8)])
    out["a photo with alpha 0 everywhere (PNG)"] = _encode(Image.fromarray(rgba, "RGBA"), "PNG")
    png = bytearray(_encode(Image.new("RGB", (64, 64)), "PNG"))
    png[16:24] = struct.pack(">II", 20000, 20000)
    out["PNG header claiming 20000x20000"] = bytes(png)
    jpeg = bytearray(real)
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    out["JPEG SOF claiming 20000x20000"] = bytes(jpeg)
    gif = bytearray(_encode(_palette_image(9000, 3), "GIF"))
    gif[6:10] = struct.pack("<HH", 10, 10)
    out["GIF: 10x10 screen, 9000x9000 frame"] = bytes(gif)
    frames = (_palette_image(4000, k % 200) for k in range(1, FLAGS.gif_frames))
    out["GIF: %d frames of 4000x4000" % FLAGS.gif_frames] = _encode(
        _palette_image(4000, 0), "GIF", save_all=True, append_images=frames, optimize=False)
    out["random bytes"] = np.random.RandomState(1).bytes(5000)
    out["empty string"] = b""
    out["JPEG cut in half"] = real[:len(real) // 2]
    return out


def run(signature, a, b, folder):
    np.save(os.path.join(folder, "a.npy"), np.array([a], dtype=object))
    np.save(os.path.join(folder, "b.npy"), np.array([b], dtype=object))
    # GNU time reports the child's peak resident memory (wait4's ru_maxrss)
    cmd = ["/usr/bin/time", "-f", "PEAK_KIB %M", sys.executable, "-m", "tensorflow.python.tools.saved_model_cli",
           "run", "--dir", FLAGS.saved_model,
           "--tag_set", "serve", "--signature_def", signature, "--inputs",
           "image_a=%s;image_b=%s" % (os.path.join(folder, "a.npy"), os.path.join(folder, "b.npy"))]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    seconds = time.time() - start
    peaks = [line.split()[1] for line in err.splitlines() if line.startswith("PEAK_KIB ")]
    peak = float(peaks[-1]) / 1024.0 if peaks else float("nan")
    if proc.returncode == 0:
        got = {}
        for key in ("distance", "same", "face_a"):
            got[key] = out.split("output key %s:" % key)[1].split("[")[1].split("]")[0].strip()
        answer = "distance %s, same %s, face_a %s" % (got["distance"], got["same"], got["face_a"])
    else:
        lines = [line for line in err.splitlines() if "image_a:" in line or "assertion failed" in line
                 or "InvalidArgumentError" in line]
        answer = "refused: " + (lines[-1].strip()[:140] if lines else "exit %d" % proc.returncode)
    return answer, seconds, peak


def main(argv):
    del argv
    os.makedirs(FLAGS.out_dir)
    real = [open(p, "rb").read() for p in FLAGS.photos]
    aligner = align_graph.Aligner()
    aligned = []
    for p in FLAGS.photos:
        face, _ = aligner(photos_lib.to_rgb(photos_lib.read(p)[1]))
        aligned.append(_encode(Image.fromarray(face), "JPEG", quality=95))
    rows = [("two real whole photos (baseline)", "verify", real[0], real[1]),
            ("two real aligned faces", "verify_aligned", aligned[0], aligned[1])]
    rows += [(name, "verify", data, real[1]) for name, data in hostile_inputs(real[0]).items()]
    print("| input (image_a; image_b a real photo) | size | signature | answer | seconds | peak MiB |")
    print("|---|---|---|---|---|---|")
    for name, signature, a, b in rows:
        answer, seconds, peak = run(signature, a, b, FLAGS.out_dir)
        print("| %s | %d B | %s | %s | %.1f | %.0f |" % (name, len(a), signature, answer, seconds, peak), flush=True)


if __name__ == "__main__":
    flags.mark_flags_as_required(["saved_model", "out_dir"])
    app.run(main)
