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

import numpy as np
import tensorflow as tf

from siamese_graph import fileio
from siamese_graph.errors import DataError

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
# The features the pair graphs read (the image, who, which file).
META_FEATURES = {k: FEATURES[k] for k in ("image/encoded", "image/identity", "image/filename")}


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


class Split:
    """One split of a record set (TF-Slim's dataset descriptor): its shards in
    order, their files, and per-identity photo counts from the manifest."""

    def __init__(self, records_dir, name, entry, num_identities):
        self.records_dir, self.name = records_dir, name
        self.shards = entry["shards"]
        self.files = [os.path.join(records_dir, s["file"]) for s in self.shards if s["records"]]
        self.all_files = [os.path.join(records_dir, s["file"]) for s in self.shards]
        self.counts = np.zeros(num_identities, np.int64)
        for shard in self.shards:
            for identity, count in shard["identities"]:
                self.counts[identity] += count
        self.photos = int(self.counts.sum())
        self.identities = int((self.counts > 0).sum())
        self.multi = int((self.counts >= 2).sum())  # identities with two photos or more

    def __str__(self):
        return "%s split '%s'" % (self.records_dir, self.name)

    def deal(self, index, count):
        """The part of this split worker `index` of `count` reads: every count-th
        non-empty shard from the index-th, so no two workers read the same records
        in an epoch. With fewer shards than workers, worker i reads shard i mod the
        number of shards (some shards are then read by two workers).
        Returns a Split over those shards."""
        nonempty = [s for s in self.shards if s["records"]]
        part = nonempty[index::count] or [nonempty[index % len(nonempty)]]
        return Split(self.records_dir, self.name, {"shards": part}, len(self.counts))

    def find_corrupt_shard(self):
        """The first shard whose bytes differ from the manifest's checksum, or None."""
        for shard, path in zip(self.shards, self.all_files):
            if sha256(path) != shard["sha256"]:
                return path
        return None


class RecordSet:
    """A records folder written by make_records, read through its manifest.json.

    Attributes: path, manifest (the parsed JSON), num_identities, splits
    ({name: Split}). Construction checks the manifest's shape and that every
    shard it lists is there with its size; it raises DataError naming the file.
    """

    def __init__(self, records_dir):
        self.path = records_dir
        self.manifest_path = os.path.join(records_dir, MANIFEST)
        if not fileio.isdir(records_dir):
            raise DataError("%s: records folder not found" % records_dir)
        if not fileio.isfile(self.manifest_path):
            raise DataError("%s: no manifest (not written by make_records, or the run did not finish)"
                            % self.manifest_path)
        self.manifest = read_json(self.manifest_path, "manifest")
        _check_manifest(self.manifest, self.manifest_path)
        self.num_identities = self.manifest["num_identities"]
        self.splits = {name: Split(records_dir, name, entry, self.num_identities)
                       for name, entry in self.manifest["splits"].items()}
        for split in self.splits.values():
            for shard, path in zip(split.shards, split.all_files):
                if not fileio.isfile(path):
                    raise DataError("%s: listed in the manifest but missing" % path)
                size = fileio.getsize(path)
                if size != shard["bytes"]:
                    raise DataError("%s: %d bytes but the manifest says %d: manifest and shards disagree"
                                    % (path, size, shard["bytes"]))

    def split(self, name):
        """The Split called name; DataError naming the manifest if there is none."""
        if name not in self.splits:
            raise DataError("%s: no '%s' split (it has: %s)" % (self.manifest_path, name,
                                                                ", ".join(sorted(self.splits))))
        return self.splits[name]

    def find_corrupt_shard(self):
        """The first shard of any split whose checksum differs from the manifest's, or None."""
        for split in self.splits.values():
            path = split.find_corrupt_shard()
            if path:
                return path
        return None


def read_labels(records_dir, num_identities):
    """labels.txt's identity names, by index ("<index>:<name>" lines): DataError
    naming the file when it is missing or does not list num_identities names."""
    path = os.path.join(records_dir, LABELS)
    if not fileio.isfile(path):
        raise DataError("%s: no identity labels (not written by make_records?)" % path)
    names = {}
    with fileio.open_file(path, "rb") as f:
        text = f.read().decode("utf-8")
    for n, line in enumerate(text.splitlines(), 1):
        index, sep, name = line.partition(":")
        if not sep or not index.isdigit():
            raise DataError("%s:%d: expected <index>:<identity name>, got %r" % (path, n, line[:80]))
        names[int(index)] = name
    if sorted(names) != list(range(num_identities)):
        raise DataError("%s: lists %d identities, the manifest %d" % (path, len(names), num_identities))
    return [names[i] for i in range(num_identities)]


def identity_classes(splits, min_photos=2):
    """One class a person across the splits of several record folders, by identity
    name (labels.txt): a person in two folders is one class. A person with fewer
    than min_photos photos in all the splits together gets none (one photo alone
    is no person to learn).

    Args:
      splits: Split objects (each folder's index space is its own); for a
        worker's share of a split (Split.deal), the whole split is read.
      min_photos: the fewest photos a person needs for a class.
    Returns:
      (tables, num_classes): tables[k] int64 [len(splits[k].counts)], the class
      of each identity index of splits[k] (-1: none); classes are numbered
      0..num_classes-1 in order of first appearance.
    """
    # A cluster worker's split holds its share of the shards (Split.deal): classes are
    # made from the whole split, so every worker numbers them alike.
    whole = [RecordSet(split.records_dir).split(split.name).counts for split in splits]
    names = [read_labels(split.records_dir, len(counts)) for split, counts in zip(splits, whole)]
    photos = {}
    for counts, folder in zip(whole, names):
        for i in np.flatnonzero(counts):
            photos[folder[i]] = photos.get(folder[i], 0) + int(counts[i])
    classes, tables = {}, []
    for counts, folder in zip(whole, names):
        table = np.full(len(folder), -1, np.int64)
        for i in np.flatnonzero(counts):
            if photos[folder[i]] >= min_photos:
                table[i] = classes.setdefault(folder[i], len(classes))
        tables.append(table)
    return tables, len(classes)


def _check_manifest(m, path):
    """DataError naming the first field of a manifest that is not of the expected shape."""
    def fail(where, what):
        raise DataError("%s: not a valid manifest (%s: %s)" % (path, where, what))

    def need(obj, key, kind, where):
        if not isinstance(obj, dict) or key not in obj:
            fail(where, "missing '%s'" % key)
        if not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            fail("%s.%s" % (where, key) if where else key, "expected %s" % getattr(kind, "__name__", kind))
        return obj[key]

    if not isinstance(m, dict):
        fail("top level", "expected an object")
    n = need(m, "num_identities", int, "")
    for name, entry in need(m, "splits", dict, "").items():
        where = "splits.%s" % name
        for k, shard in enumerate(need(entry, "shards", list, where)):
            w = "%s.shards[%d]" % (where, k)
            name = need(shard, "file", str, w)
            if name in ("", ".", "..") or "/" in name or "\\" in name or name != os.path.basename(name):
                fail(w + ".file", "%r is not a file of the records folder (a manifest names its own shards, "
                     "nothing outside)" % name)
            need(shard, "sha256", str, w)
            need(shard, "records", int, w)
            need(shard, "bytes", int, w)
            for block in need(shard, "identities", list, w):
                if (not isinstance(block, list) or len(block) != 2
                        or not all(isinstance(v, int) for v in block)
                        or not 0 <= block[0] < n or block[1] < 1):
                    fail(w + ".identities", "expected [identity < %d, count >= 1] blocks, got %r"
                         % (n, block))


def read_json(path, what="file"):
    """A JSON file the project wrote (manifest, model.json, threshold.json): DataError naming
    it when it is unreadable, not UTF-8 or not JSON."""
    try:
        with fileio.open_file(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise DataError("%s: %s not found" % (path, what))
    except tf.errors.NotFoundError:
        raise DataError("%s: %s not found" % (path, what))
    except tf.errors.OpError as e:
        raise DataError("%s: not a readable %s (%s)" % (path, what, e.message.splitlines()[0][:100]))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError("%s: not a valid %s (%s)" % (path, what, str(e).splitlines()[0][:100]))


def sha256(path):
    """Hex sha256 of a file (shard checksums in the manifest)."""
    h = hashlib.sha256()
    with fileio.open_file(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
