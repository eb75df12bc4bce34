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
import hashlib
import json
import os

import tensorflow as tf

from siamese_graph.errors import UserError

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


def load_manifest(records_dir):
    """Reads records_dir/manifest.json, checking every shard is there with its size."""
    path = os.path.join(records_dir, MANIFEST)
    if not os.path.isdir(records_dir):
        raise UserError("%s: records folder not found" % records_dir)
    if not os.path.isfile(path):
        raise UserError("%s: no manifest (not written by make_records, or the run did not finish)" % path)
    try:
        with open(path) as f:
            manifest = json.load(f)
        splits = manifest["splits"]
    except (ValueError, KeyError) as e:
        raise UserError("%s: not a valid manifest (%s)" % (path, e))
    for split in splits.values():
        for shard in split["shards"]:
            shard_path = os.path.join(records_dir, shard["file"])
            if not os.path.isfile(shard_path):
                raise UserError("%s: listed in the manifest but missing" % shard_path)
            if os.path.getsize(shard_path) != shard["bytes"]:
                raise UserError("%s: %d bytes but the manifest says %d: manifest and shards disagree"
                                % (shard_path, os.path.getsize(shard_path), shard["bytes"]))
    return manifest


def sha256(path):
    """Hex sha256 of a file (shard checksums in the manifest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
