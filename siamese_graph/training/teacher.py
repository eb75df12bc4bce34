"""Knowledge distillation's teacher (--distill_from): a trained model's features of
every training photo, computed once before training, and their lookup in the pair
batches.

The teacher sees each record's photo as inference does (its own crop and input
size, the mean of the photo's and its mirror image's features); the student is
asked, beside its own losses, for features whose direction is the teacher's
(siamese.distillation_loss), on the augmented crops it trains on. Photos are
matched by a 64-bit fingerprint of their record's filename, within one split.
"""
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from siamese_graph.data import preprocessing, records
from siamese_graph.errors import ArgumentError
from siamese_graph.inference import models, zoo
from siamese_graph.model import siamese, traindir
from siamese_graph.model.nets import nets_factory

v1 = tf.compat.v1

FINGERPRINT_BUCKETS = 2 ** 62


def resolve(spec):
    """A packaged model's name or a train_dir -> the train_dir to restore.
    Raises ArgumentError (flag distill_from) when it is neither."""
    if spec in zoo.names():
        return zoo.path(spec)
    if os.path.isfile(os.path.join(spec, traindir.MODEL_FILE)):
        return spec
    raise ArgumentError("distill_from", spec, "not a packaged model (%s) nor a train_dir with %s"
                        % (", ".join(zoo.names()) or "none", traindir.MODEL_FILE))


def fingerprint(filenames):
    """int64 fingerprints of filename strings (tensor -> tensor), the lookup's keys."""
    return tf.strings.to_hash_bucket_fast(filenames, FINGERPRINT_BUCKETS)


def embed_split(split, teacher_dir, batch_size=256):
    """The teacher's features of every photo of a split's records.

    Args:
      split: a records.Split (its files are read in order).
      teacher_dir: a train_dir (resolve).
    Returns:
      (keys int64 [N] sorted, features float32 [N, D] in the keys' order).
    Raises DataError for a teacher that cannot be restored.
    """
    ckpt = traindir.resolve_checkpoint(teacher_dir, None)
    config = traindir.load_config(teacher_dir)
    graph = tf.Graph()
    with graph.as_default():
        box = preprocessing.boxes(preprocessing.parse_crop(config["crop"]))

        def load(serialized):
            p = tf.io.parse_single_example(serialized, records.META_FEATURES)
            crop = preprocessing.crop_resize(preprocessing.decode(p["image/encoded"]), config["image_size"], box)[0]
            return crop, fingerprint(p["image/filename"])

        ds = tf.data.TFRecordDataset(split.files).map(load, num_parallel_calls=tf.data.AUTOTUNE)
        crops, keys = v1.data.make_one_shot_iterator(ds.batch(batch_size).prefetch(2)).get_next()
        feats = models.features(preprocessing.finish(crops), nets_factory.network_fn_from_config(config),
                                config["l2_normalize"], True)
        # the head is never run; it is built so that the checkpoint's variables all have a place
        siamese.distance(feats, feats, config["head"], config["head_units"], config["epsilon"])
        with v1.Session(graph=graph) as sess:
            models.restore(sess, ckpt, config)
            out_keys, out_feats = [], []
            while True:
                try:
                    k, f = sess.run([keys, feats])
                except tf.errors.OutOfRangeError:
                    break
                out_keys.append(k)
                out_feats.append(f)
    keys, feats = np.concatenate(out_keys), np.concatenate(out_feats)  # a pairable split has photos
    order = np.argsort(keys, kind="stable")
    return keys[order], feats[order].astype(np.float32)


def tables(splits, spec):
    """[(keys, features)] for each split (embed_split), with a log line of the cost."""
    teacher_dir = resolve(spec)
    out = []
    for split in splits:
        start = time.time()
        out.append(embed_split(split, teacher_dir))
        logging.info("teacher %s: features of %d photos of %s (%.0f photos/s)", spec, len(out[-1][0]), split,
                     len(out[-1][0]) / max(time.time() - start, 1e-6))
    return out


def lookup(filenames, keys, features):
    """(features [B, D], known [B] bool) of the photos named filenames [B] string:
    the teacher's row for each, zeros and False where the table has none.
    keys, features: one split's table (constants)."""
    keys = tf.constant(keys, tf.int64)
    features = tf.constant(features, tf.float32)
    wanted = fingerprint(filenames)
    at = tf.minimum(tf.searchsorted(keys, wanted), tf.size(keys) - 1)
    known = tf.equal(tf.gather(keys, at), wanted)
    return tf.gather(features, at) * tf.cast(known, tf.float32)[:, None], known
