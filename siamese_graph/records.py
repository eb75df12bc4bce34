"""The record schema: feature names, encoding one example, parsing one.

Features (TF-Slim's names):
  image/encoded        bytes   RGB JPEG
  image/format         bytes   b"jpeg"
  image/height         int64
  image/width          int64
  image/filename       bytes   the photo's path relative to the source folder
  image/identity       int64   contiguous identity index (see labels.txt)
  image/identity_name  bytes   the source's own identity (CelebA's number, a folder name)
"""
import tensorflow as tf

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LABELS = "labels.txt"
SPLITS = ("train", "val", "test")


def shard_name(split, index, num_shards):
    """TF-Slim's shard naming: train-00003-of-00016.tfrecord."""
    return "%s-%05d-of-%05d.tfrecord" % (split, index, num_shards)


def _bytes(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _int64(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))


def encode_example(encoded, height, width, filename, identity, identity_name):
    """Returns one serialized tf.train.Example."""
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": _bytes(encoded),
        "image/format": _bytes(b"jpeg"),
        "image/height": _int64(height),
        "image/width": _int64(width),
        "image/filename": _bytes(filename.encode("utf-8")),
        "image/identity": _int64(identity),
        "image/identity_name": _bytes(identity_name.encode("utf-8")),
    })).SerializeToString(deterministic=True)  # map order is per-process otherwise


FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/filename": tf.io.FixedLenFeature([], tf.string),
    "image/identity": tf.io.FixedLenFeature([], tf.int64),
    "image/identity_name": tf.io.FixedLenFeature([], tf.string),
}


def parse_example(serialized):
    """Parses one serialized example (a scalar string tensor) into a dict of tensors."""
    return tf.io.parse_single_example(serialized, FEATURES)


def parse_identity(serialized):
    """Parses only the identity index: cheap, so pairing can happen before decoding."""
    return tf.io.parse_single_example(
        serialized, {"image/identity": FEATURES["image/identity"]})["image/identity"]


def parse_image_bytes(serialized):
    """Parses only the encoded image bytes."""
    return tf.io.parse_single_example(
        serialized, {"image/encoded": FEATURES["image/encoded"]})["image/encoded"]
