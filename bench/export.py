"""Benchmark: the exported models against the checkpoint they come from.

For each --checkpoint_dir: runs `export --tflite` into a temporary folder, then on
the same balanced 6,000 pairs of celeba-mini's test partition (evaluate's draw:
seed 0, 10 folds) prints, per model (checkpoint, SavedModel, TFLite float,
TFLite dynamic-range int8):
  size      bytes on disk (checkpoint: the .data and .index files; SavedModel:
            saved_model.pb plus variables/)
  ms/pair   median latency of one verified pair (two tower passes plus the
            head; with flip-averaging four tower inputs), 200 runs after 20
            warm-up runs. TFLite: the `verify` signature on 1 thread. SavedModel:
            `verify` on two JPEGs, decoding included, with TF's default threads
            (all cores), as a server runs it.
  AUC, 10-fold accuracy on the 6,000 pairs
  photos/s  the checkpoint path (models.Model.embed on the JPEG bytes) against
            the SavedModel's `embed` signature on the same bytes, batches of 64,
            each distinct photo once: like for like.

  python bench/export.py --checkpoint_dir=runs/default[,runs/densenet121] [--data=../shared/data/celeba-mini]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def test_pairs(data, num_pairs):
    from siamese_graph.data import pair_lists

    ident = dict(line.split() for line in open(os.path.join(data, "identity_CelebA.txt")))
    part = dict(line.split() for line in open(os.path.join(data, "list_eval_partition.txt")))
    names = sorted(n for n, p in part.items() if p == "2")
    pairs = pair_lists.balanced_from_identities(names, [ident[n] for n in names], num_pairs, seed=0)
    images = os.path.join(data, "img_align_celeba")
    return [(os.path.join(images, a), os.path.join(images, b), y, f) for a, b, y, f in pairs]


def quality(d, pairs):
    from siamese_graph.inference import metrics

    y = np.array([p[2] for p in pairs])
    return metrics.roc_auc(d, y), metrics.kfold_accuracy(d, y, [p[3] for p in pairs])[0]


def median_ms(fn, runs, warmup=20):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def bench(checkpoint_dir, pairs, runs):
    import tensorflow as tf

    from siamese_graph.inference import models
    from siamese_graph.serving import phone, tflite

    out = tempfile.mkdtemp(prefix="bench-export-")
    r = subprocess.run([sys.executable, "-m", "siamese_graph.export", "--checkpoint_dir=%s" % checkpoint_dir,
                        "--output_dir=%s" % out, "--threshold=1", "--tflite"], cwd=REPO, capture_output=True,
                       text=True)
    if r.returncode:
        sys.exit(r.stderr[-2000:])
    version = json.loads(r.stdout)["saved_model"]
    model = models.Model(checkpoint_dir)
    photos = sorted({p for pair in pairs for p in pair[:2]})
    data = {p: open(p, "rb").read() for p in photos}
    index = {p: i for i, p in enumerate(photos)}
    a = [index[p[0]] for p in pairs]
    b = [index[p[1]] for p in pairs]
    rows = []

    start = time.perf_counter()
    feats = model.embed([data[p] for p in photos])
    ckpt_rate = len(photos) / (time.perf_counter() - start)
    d = model.distance(feats[a], feats[b])
    ckpt_bytes = sum(os.path.getsize(f) for f in tf.io.gfile.glob(model.checkpoint + ".*") if not f.endswith(".meta"))
    rows.append(["checkpoint", ckpt_bytes, None, *quality(d, pairs), ckpt_rate])

    loaded = tf.saved_model.load(version)
    # the records' photos are aligned crops: the signatures that take them as they are
    embed, verify = loaded.signatures["embed_aligned"], loaded.signatures["verify_aligned"]
    start = time.perf_counter()
    sm_feats = np.concatenate([embed(images=tf.constant([data[p] for p in photos[i:i + 64]]))["features"].numpy()
                               for i in range(0, len(photos), 64)])
    sm_rate = len(photos) / (time.perf_counter() - start)
    sm_d = np.concatenate([verify(image_a=tf.constant([data[p[0]] for p in pairs[i:i + 64]]),
                                  image_b=tf.constant([data[p[1]] for p in pairs[i:i + 64]]))["distance"].numpy()
                           for i in range(0, len(pairs), 64)])
    one_a, one_b = tf.constant([data[pairs[0][0]]]), tf.constant([data[pairs[0][1]]])
    sm_ms = median_ms(lambda: verify(image_a=one_a, image_b=one_b), runs)
    rows.append(["saved_model", folder_bytes(version) - folder_bytes(os.path.join(version, "tflite")), sm_ms,
                 *quality(sm_d, pairs), sm_rate])
    max_diff = max(float(np.abs(sm_d - d).max()), float(np.abs(sm_feats - feats).max()))

    faces = np.stack([phone.phone_face(tf.io.decode_jpeg(data[p], channels=3, dct_method="INTEGER_FAST").numpy(),
                                         model.crop, model.image_size) for p in photos])
    lite_diff = {}
    for name in ("model_float.tflite", "model_int8.tflite"):
        path = os.path.join(version, "tflite", name)
        lite = tflite.TFLiteModel(path, num_threads=1)
        f = np.concatenate([lite.embed(faces[i:i + 64]) for i in range(0, len(faces), 64)])
        ld = lite.compare(f[a], f[b])
        fa, fb = faces[a[:1]], faces[b[:1]]
        ms = median_ms(lambda: lite.verify(fa, fb), runs)
        rows.append([name.replace("model_", "tflite_").replace(".tflite", ""), os.path.getsize(path), ms,
                     *quality(ld, pairs), None])
        lite_diff[name] = float(np.abs(ld - sm_d).max())
        runtime = type(lite.interpreter).__module__.split(".")[0]
    return model, rows, max_diff, lite_diff, runtime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint_dir", required=True, help="one or several train_dirs, comma-separated")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data", "celeba-mini"))
    ap.add_argument("--pairs", type=int, default=6000)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    pairs = test_pairs(args.data, args.pairs)
    print("%d pairs of %s's test partition; latency: median of %d runs, TFLite on 1 thread, SavedModel on "
          "TF's default threads" % (len(pairs), args.data, args.runs))
    for checkpoint_dir in args.checkpoint_dir.split(","):
        model, rows, max_diff, lite_diff, runtime = bench(checkpoint_dir, pairs, args.runs)
        print("\n%s: %s/%s, %dx%d input, flip-averaged, step %s" % (
            checkpoint_dir, model.config["net"], model.config["head"], model.image_size, model.image_size, model.step))
        print("%-14s %10s %9s %7s %10s %10s" % ("model", "bytes", "ms/pair", "AUC", "10-fold", "photos/s"))
        for name, size, ms, auc, acc, rate in rows:
            print("%-14s %10d %9s %7.4f %10.4f %10s" % (name, size, "-" if ms is None else "%.2f" % ms, auc, acc,
                                                       "-" if rate is None else "%.0f" % rate))
        print("SavedModel vs checkpoint (distances and features): max abs difference %.2e" % max_diff)
        print("TFLite runtime: %s; distances vs the SavedModel's, max abs difference: %s" % (
            runtime, ", ".join("%s %.2e" % (k, v) for k, v in lite_diff.items())))


if __name__ == "__main__":
    main()
