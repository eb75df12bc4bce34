"""Benchmark: the pair input graph against plain decoding and the naive zip-and-filter.

For each record set: balance, records read per pair and identities seen over
10,000 pairs (inspect_pairs), pairs/s emitted by pairs.inputs as training sees
them (decoded, augmented, batched; with and without rotation, and with
grayscale and low-resolution augmentation at 0.2 each: the "gray+lowres" rows;
train.flags has grayscale at 0.4), from the records
(the record-by-record graph) and from the cache (decoding once, --cache; the
"x records" column is the ratio to the first row), how much the cache's crops
differ from direct ones (cache_difference), images/s for simply decoding the same
records (parse, decode, resize to the same size, batch), and the naive pipeline
of the article (two record-level shuffles zipped, a random filter that keeps
every same pair and enough different pairs to balance), run for a bounded time.
Each set runs in its own subprocess; peak RSS is that subprocess's. Each pairs/s
(and decode/s) is the median of --repeats timings of --pairs pairs, the rows
timed in turns, every row's graph built once and kept open.

  python bench/pairs.py [--pairs=10000] [--repeats=3] [--sets=mini,lowres,celeba-scale] [--image_size=64]

Sets: mini = ../shared/data/celeba-mini, lowres = ../shared/data/celeba-10k-lowres
(records written to a temp folder first), celeba-scale = tiny generated photos
with CelebA's real identity distribution (bench/celeba_scale.py).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")


class _Rate:
    """A graph and an open session whose items/s can be timed again and again: the
    rows of one set are timed in turns (repeats), so a slow spell of the machine
    falls on every row alike. The batches are made and dropped in the graph
    (tf.group), as a training step consumes them: fetching them into numpy would
    time a copy the training loop never makes."""

    def __init__(self, build, batch):
        import tensorflow as tf

        self.graph, self.batch = tf.Graph(), batch
        with self.graph.as_default():
            self.op = tf.group(*tf.nest.flatten(build()))
        self.sess = tf.compat.v1.Session(graph=self.graph)
        for _ in range(3):  # warm-up (with the cache: the first batch decodes the split)
            self.sess.run(self.op)

    def __call__(self, n):
        time.sleep(0.5)  # the row timed before refills its prefetch buffer in the background: let it finish
        self.sess.run(self.op)
        start = time.time()
        for _ in range(n // self.batch):
            self.sess.run(self.op)
        return (n // self.batch) * self.batch / (time.time() - start)


def decode_rate(info, image_size, batch=100):
    import tensorflow as tf

    from siamese_graph.data import preprocessing, records

    def build():
        ds = tf.data.TFRecordDataset(info.files).repeat()
        ds = ds.map(lambda s: tf.image.resize(preprocessing.decode(records.parse_image_bytes(s)),
                                              [image_size, image_size]),
                    num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE)
        return tf.compat.v1.data.make_one_shot_iterator(ds).get_next()

    return _Rate(build, batch)


def pair_rate(records_dir, image_size, rotation_deg, cache=False, gray_lowres=0.0, batch=100):
    """pairs/s as training sees them: images and labels only, no read counter. With the
    cache, the first (warm-up) batch decodes the split; the rate is the steady state."""
    from siamese_graph.data import pairs

    return _Rate(lambda: pairs.inputs(records_dir, "train", batch, image_size, augment=True,
                                      rotation_deg=rotation_deg, cache=cache, gray_prob=gray_lowres,
                                      lowres_prob=gray_lowres), batch)


def cache_difference(info, image_size, n=512):
    """Mean absolute difference (0-1 pixels) between n of the split's photos cropped
    directly (preprocessing.crop_resize, jittered and mirrored boxes) and the same
    boxes cropped from their cached region (the training graph's second resampling,
    crops snapped to the cache's pixels)."""
    import numpy as np
    import tensorflow as tf

    from siamese_graph.data import pair_cache, preprocessing, records

    box = preprocessing.CROPS[preprocessing.DEFAULT_CROP]
    outer, size = pair_cache.cache_geometry(box, image_size, True)
    with tf.Graph().as_default():
        ds = tf.data.TFRecordDataset(info.files).take(n).enumerate()

        def both(i, s):
            photo = preprocessing.decode(records.parse_image_bytes(s))
            b = preprocessing.boxes(box, 1, tf.stack([i, 3]))
            direct = preprocessing.crop_resize(photo, image_size, b)
            cached = preprocessing.crop_resize_many(pair_cache.cached_region(photo, outer, size)[tf.newaxis],
                                                    tf.zeros([1], tf.int32), preprocessing.within(b, outer),
                                                    image_size) / 255.0
            return tf.reduce_mean(tf.abs(direct - cached))

        diffs = tf.compat.v1.data.make_one_shot_iterator(ds.map(both).batch(n)).get_next()
        with tf.compat.v1.Session() as sess:
            return float(np.mean(sess.run(diffs)))


def naive(info, image_size, seconds=60.0, max_pairs=1000, batch=10, seed=0):
    """The article's pipeline; returns (pairs, records read, same fraction, pairs/s)."""
    import numpy as np
    import tensorflow as tf

    from siamese_graph.data import pairs, preprocessing

    p = info.counts[info.counts > 0].astype(np.float64) / info.photos
    q = float((p ** 2).sum())  # chance two independent photos share an identity
    keep_different = q / (1 - q)
    with tf.Graph().as_default():
        counter = tf.compat.v1.get_variable("reads", [], tf.int64, trainable=False,
                                            initializer=tf.compat.v1.zeros_initializer(),
                                            use_resource=True)
        a = pairs.other_photos(info, seed, counter=counter)
        b = pairs.other_photos(info, seed + 100, counter=counter)
        ds = tf.data.Dataset.zip((a, b, tf.data.Dataset.random(seed + 7)))
        ds = ds.filter(lambda x, y, r: tf.logical_or(
            tf.equal(x[1], y[1]),
            tf.random.stateless_uniform([], tf.stack([r, 0])) < keep_different))

        def decode(x, y, r):
            box = preprocessing.boxes(preprocessing.CROPS["celeba"])
            img = [preprocessing.crop_resize(preprocessing.decode(pairs.records.parse_image_bytes(s)),
                                             image_size, box)[0] for s in (x[0], y[0])]
            return img[0], img[1], tf.cast(tf.not_equal(x[1], y[1]), tf.int32)

        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(1)
        it = tf.compat.v1.data.make_initializable_iterator(ds)
        nxt = it.get_next()
        with tf.compat.v1.Session() as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), it.initializer])
            start, labels = time.time(), []
            while time.time() - start < seconds and len(labels) < max_pairs:
                labels.extend(sess.run(nxt[2]))
            elapsed = time.time() - start
            reads = int(sess.run(counter))
    labels = np.array(labels)
    return len(labels), reads, float((labels == 0).mean()) if len(labels) else 0.0, len(labels) / elapsed


def one(name, records_dir, n_pairs, image_size, repeats):
    import numpy as np
    import tensorflow as tf

    from siamese_graph import inspect_pairs
    from siamese_graph.data import pair_cache, pairs
    from siamese_graph.training import train_config

    tf.compat.v1.disable_eager_execution()
    info = pairs.pairable_split(records_dir, "train")
    rows, timers = [], []
    for label, rot, cache, gray_lowres in (
            ("records (augment)", 0.0, False, 0.0), ("records (augment+rot8)", 8.0, False, 0.0),
            ("records (gray+lowres)", 0.0, False, 0.2),
            ("cache (augment)", 0.0, True, 0.0), ("cache (augment+rot8)", 8.0, True, 0.0),
            ("cache (gray+lowres)", 0.0, True, 0.2)):
        rep, _ = inspect_pairs.inspect(records_dir, "train", n_pairs, train_config.TrainConfig(
            batch_size=100, image_size=image_size, augment=True, rotation_deg=rot, cache=cache))
        timers.append(pair_rate(records_dir, image_size, rot, cache, gray_lowres))
        rows.append([label, rep["pairs"], rep["same_fraction"], rep["records_read_per_pair"],
                     None, rep["identities_in_same_pairs"],
                     rep["identities_in_different_pairs"]])
    timers.append(decode_rate(info, image_size))
    rates = [[] for _ in timers]
    for _ in range(repeats):  # every row in turn, repeats times: medians
        for timer, got in zip(timers, rates):
            got.append(timer(n_pairs))
    for row, got in zip(rows, rates):
        row[4] = float(np.median(got))
    images_per_s = float(np.median(rates[-1]))
    npairs, reads, same, rate = naive(info, image_size)
    rows.append(["naive zip+filter", npairs, same, reads / max(npairs, 1), rate, None, None])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache_mib = pair_cache.cache_bytes(info, image_size, augment=True) / 2 ** 20
    print(json.dumps({"name": name, "identities": info.identities, "photos": info.photos, "cache_mib": cache_mib,
                      "images_per_s": images_per_s, "rows": rows, "peak_mib": peak,
                      "cache_difference": cache_difference(info, image_size)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=10000)
    ap.add_argument("--image_size", type=int, default=64)
    ap.add_argument("--sets", default="mini,lowres,celeba-scale")
    ap.add_argument("--repeats", type=int, default=3, help="each row's pairs/s: the median of this many "
                    "timings, the rows timed in turns")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one[0], args.one[1], args.pairs, args.image_size, args.repeats)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from bench import celeba_scale
    from siamese_graph.data import record_writer
    from siamese_graph.data.datasets import celeba

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            out = os.path.join(tmp, name)
            if name == "celeba-scale":
                records_dir = celeba_scale.build(out)
            else:
                src = os.path.join(SHARED, {"mini": "celeba-mini", "lowres": "celeba-10k-lowres"}[name])
                records_dir = out
                record_writer.convert(celeba.read(src), records_dir, num_workers=2)
            r = subprocess.run([sys.executable, __file__, "--one", name, records_dir,
                                "--pairs=%d" % args.pairs, "--image_size=%d" % args.image_size,
                                "--repeats=%d" % args.repeats],
                               capture_output=True, text=True)
            if r.returncode:
                sys.exit(r.stderr[-3000:])
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print("pairs/(d/2): pairs/s against decoding alone at 2 photos a pair; x records: against "
          "'records (augment)' of the same set")
    print("%-13s %-23s %7s %6s %9s %8s %9s %10s %6s %6s %8s %10s" % (
        "set", "pipeline", "pairs", "same", "reads/pr", "pairs/s", "decode/s", "pairs/(d/2)",
        "ids=", "ids!=", "peakMiB", "x records"))
    for res in results:
        base = res["rows"][0][4]
        for label, n, same, reads, rate, ids_same, ids_diff in res["rows"]:
            print("%-13s %-23s %7d %6.3f %9.2f %8.0f %9.0f %10.2f %6s %6s %8.0f %10.2f" % (
                res["name"], label, n, same, reads, rate, res["images_per_s"],
                rate / (res["images_per_s"] / 2), ids_same if ids_same is not None else "-",
                ids_diff if ids_diff is not None else "-", res["peak_mib"], rate / base))
        print("%-13s %d photos, %d identities; the cache holds %.1f MiB at %dx%d; its crops differ from "
              "direct ones by %.4f (mean absolute, 0-1 pixels)" % (
                  "", res["photos"], res["identities"], res["cache_mib"], args.image_size, args.image_size,
                  res["cache_difference"]))


if __name__ == "__main__":
    main()
