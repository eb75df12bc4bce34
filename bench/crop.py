"""Benchmark: the cached pair graph's per-batch pixel work on one thread, op by op.

A batch of B photos cropped from a cache of N photos (random pixels: the timing
does not depend on them) at the cache's size for --image_size (pair_cache.cache_geometry
with augmentation), the jittered and mirrored boxes of preprocessing.boxes:

  before: crop_and_resize          one tf.image.crop_and_resize of the batch
  now: crop_resize_many            a slice and one ResizeBilinear a photo, boxes snapped
  before: crop_and_resize, /255, finish   then finish as it was (augmentation on): the
                                   brightness and contrast clipped to [0, 1], then
                                   tf.image.per_image_standardization
  now: crop_resize_many, finish    preprocessing.finish (scale=255: the division folded
                                   into the contrast's gain; the clip and the
                                   standardization in fewer passes)
  now: the same, gray+lowres       with grayscale and low resolution at 0.2 each
                                   (train.flags has grayscale at 0.4)

Milliseconds per batch on one thread (intra- and inter-op pools of 1), medians of
--repeats rounds, the rows timed in turns.

  python bench/crop.py [--sizes=48,64,96] [--batch=200] [--repeats=3]
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def finish_before(images, seed):
    """preprocessing.finish with a seed as it was before the fewer-pass standardization:
    brightness and contrast, clipped, then per_image_standardization."""
    import tensorflow as tf

    from siamese_graph.data import preprocessing

    _, factor, shift = preprocessing.exposure_draws(seed, tf.shape(images)[0])
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = tf.clip_by_value((images - mean) * factor + mean + shift, 0.0, 1.0)
    return tf.image.per_image_standardization(images)


def rows(image_size, batch, repeats, photos=4595, runs=30):
    import numpy as np
    import tensorflow as tf

    from siamese_graph.data import pair_cache, preprocessing

    crop = preprocessing.CROPS[preprocessing.DEFAULT_CROP]
    outer, size = pair_cache.cache_geometry(crop, image_size, True)
    cache = np.random.default_rng(0).integers(0, 256, (photos,) + size + (3,), dtype=np.uint8)
    with tf.Graph().as_default():
        fed = tf.compat.v1.placeholder(tf.uint8, cache.shape)
        held = tf.compat.v1.Variable(fed, trainable=False, use_resource=True)
        images = held.read_value()
        images.set_shape(cache.shape)
        step = tf.compat.v1.placeholder(tf.int64, [])
        which = tf.random.stateless_uniform([batch], tf.stack([step, 1]), 0, photos, tf.int32)
        boxes = preprocessing.within(preprocessing.boxes(crop, batch, tf.stack([step, 7])), outer)
        old = tf.image.crop_and_resize(images, boxes, which, [image_size, image_size], extrapolation_value=0.0)
        new = preprocessing.crop_resize_many(images, which, boxes, image_size)
        seed = tf.stack([step, 11])
        ops = {"before: crop_and_resize": old, "now: crop_resize_many": new,
               "before: crop_and_resize, /255, finish": finish_before(old / 255.0, seed),
               "now: crop_resize_many, finish": preprocessing.finish(new, seed, scale=255.0),
               "now: the same, gray+lowres": preprocessing.finish(new, seed, gray_prob=0.2, lowres_prob=0.2,
                                                                  scale=255.0)}
        # fetch one pixel a crop: the whole op runs, nothing is copied out
        ops = {k: v[:, 0, 0, 0] for k, v in ops.items()}
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        times = {k: [] for k in ops}
        with tf.compat.v1.Session(config=config) as sess:
            sess.run(held.initializer, {fed: cache})
            for _ in range(repeats):
                for name, op in ops.items():
                    for i in range(3):
                        sess.run(op, {step: i})
                    start = time.perf_counter()
                    for i in range(runs):
                        sess.run(op, {step: i})
                    times[name].append(1000 * (time.perf_counter() - start) / runs)
    return size, {k: float(np.median(v)) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="48,64,96")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    print("ms per batch of %d photos, one thread" % args.batch)
    print("%-6s %-10s %-40s %8s %12s" % ("size", "cache", "op", "ms", "before/now"))
    for s in args.sizes.split(","):
        size, t = rows(int(s), args.batch, args.repeats)
        ratios = {"now: crop_resize_many": t["before: crop_and_resize"] / t["now: crop_resize_many"],
                  "now: crop_resize_many, finish": t["before: crop_and_resize, /255, finish"] /
                  t["now: crop_resize_many, finish"]}
        for name, ms in t.items():
            print("%-6s %-10s %-40s %8.2f %12s" % (s, "%dx%d" % size, name, ms,
                                                   "%.2f" % ratios[name] if name in ratios else "-"))


if __name__ == "__main__":
    main()
