"""The pair input graph: balanced same/different pairs from two zipped, shuffled datasets.

    image_a, image_b, label = pairs.inputs(records_dir, "train", batch_size=32, image_size=64)

  image_a, image_b: float32 [batch_size, image_size, image_size, 3], standardized
                    (preprocessing.preprocess).
  label:            int32 [batch_size]; 0 = same person, 1 = different people.
  Every batch holds exactly batch_size / 2 pairs of each label.

How same-person candidates are made cheap
-----------------------------------------
Zipping two record-level shuffles gives a same-person pair about once in N
zips (N identities), so a filter that balances them reads thousands of records
per pair at CelebA scale. Instead the two zipped datasets are:

1. identity blocks (dataset A). make_records writes each identity's photos
   contiguously in one shard and lists the block sizes in the manifest. Shards
   are read in a shuffled order (a few interleaved), records are keyed by
   identity (and by which reading of the shard they come from) with
   `group_by_window`, whose window for identity i closes after exactly count[i]
   records, i.e. at the end of its block: one open window per interleaved
   shard, never a buffer that grows with the dataset. Blocks of one
   photo are filtered out, the blocks are shuffled, and each block of n photos
   becomes n (anchor, positive) pairs: a seeded random permutation p of its
   photos gives (p[k], p[k+1 mod n]). So every photo of every identity with two
   or more photos is an anchor once per epoch (no starvation), and a positive
   is always a different photo of the same identity.
2. other photos (dataset B): the split's records, shuffled record by record.

zip(A, B) gives triplets (anchor, positive, other); a filter drops the rare
triplet whose other photo has the anchor's identity. Each triplet yields one
same pair (anchor, positive, 0) and one different pair (anchor, other, 1), so
the balance is exact, every identity (one-photo identities included) appears in
different pairs, and about (records / photos in multi-photo blocks + 1) / 2
records are read per pair (bench/pairs.py and inspect_pairs measure it).
Labels and filtering use the identity alone; images are decoded after the
filter and the triplet shuffle, three decodes for two pairs.

Order: (A zip B) -> filter -> shuffle -> decode and crop (parallel map) -> split
into two pairs -> batch -> augment and standardize the batch -> prefetch. With the same seed the first batches are the
same in any process: shuffles are seeded, interleave and map are deterministic,
and augmentation uses stateless ops seeded from Dataset.random.

Decoding once: the cached pair graph (cache=True)
-------------------------------------------------
Decoding a JPEG is about half of what a pair costs, and the per-photo ops
around it (parsing, the crop, one element at a time) the other half. With the
cache, every photo of the split is decoded once, cropped to the face box
enlarged by the largest jitter (preprocessing.jitter_extent) and resized to the
output's resolution, and kept as one uint8 tensor [N, H, W, 3] in tf.data's
memory cache (N * H * W * 3 bytes: cache_bytes). The pairs are then made on
record indices: the manifest lists each shard's identity blocks in order, so
the identity of every record index is known without reading a record. Each
epoch, every photo of a multi-photo identity is an anchor once, its positive
the next photo of a seeded random permutation of its identity's photos (as
above); the other photos are a seeded permutation of the whole split; triplets
whose other photo has the anchor's identity are dropped and the rest shuffled
(full shuffles, no buffers). A batch crops its photos from the cache
(preprocessing.crop_resize_many: the jittered and mirrored boxes, mapped into
the enlarged box and snapped to its whole pixels, each a slice and one bilinear
resize) and finishes them as one batch (preprocessing.finish): the same
augmentation, two small resamplings instead of one. Where the jitter reaches
past the photo's edge, the enlarged box does too and holds black there, as a
crop from the photo would. Records are read once per run, not about 1.5 per pair.
"""
import re

import numpy as np
import tensorflow as tf

from siamese_graph import preprocessing, records
from siamese_graph.errors import ArgumentError, DataError

MISMATCH = "the identities in the records disagree with the identity blocks in the manifest"
_META = {"image/encoded": records.FEATURES["image/encoded"],
         "image/identity": records.FEATURES["image/identity"],
         "image/filename": records.FEATURES["image/filename"]}


def pairable_split(records_dir, split):
    """The records.Split `split` of records_dir, checked to give both kinds of pairs.

    Raises DataError naming the folder and split when it is empty, has one
    identity (no different pairs) or no identity with two photos (no same pairs).
    """
    info = records.RecordSet(records_dir).split(split)
    check_pairable(info)
    return info


def check_pairable(info):
    if info.photos == 0:
        raise DataError("%s is empty" % info)
    if info.identities < 2:
        raise DataError("%s has %d identity: no different pairs possible" % (info, info.identities))
    if info.multi == 0:
        raise DataError("%s has no identity with two photos: no same pairs possible" % info)


def _records(files, seed, cycle_length, counter=None, tag=False, service_shard=False):
    """All records of the files, repeated; shard order reshuffled each epoch.

    With service_shard, each tf.data service worker reads its own files: the file
    list is sharded by the service (ShardingPolicy.HINT fills in SHARD_HINT with the
    number of workers and the worker's index).

    With tag, each record comes as (serial number of its shard's reading, record):
    the same shard may be open twice at once across an epoch boundary, and the
    tag keeps its two readings apart.
    """
    ds = tf.data.Dataset.from_tensor_slices(files)
    if service_shard:
        ds = ds.shard(tf.data.experimental.SHARD_HINT, tf.data.experimental.SHARD_HINT)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat().enumerate()

    def read(reading, path):
        records_ds = _counted(tf.data.TFRecordDataset(path), counter)
        return records_ds.map(lambda s: (reading, s)) if tag else records_ds

    return ds.interleave(read, cycle_length=min(cycle_length, len(files)), block_length=1)


def _counted(records_ds, counter):
    """records_ds, adding 1 to the int64 variable counter (if any) for every record read."""
    if counter is None:
        return records_ds

    def count(s):
        with tf.control_dependencies([counter.assign_add(1)]):
            return tf.identity(s)

    return records_ds.map(count)


def same_pairs(info, seed, block_buffer=64, cycle_length=4, counter=None, service_shard=False):
    """Dataset A: (anchor, positive, identity) from identity blocks; see the module doc."""
    counts = tf.constant(info.counts)
    max_block = int(info.counts.max())
    n = int(len(info.counts))
    ds = _records(info.files, seed, cycle_length, counter, tag=True, service_shard=service_shard)
    ds = ds.map(lambda reading, s: (reading * n + records.parse_identity(s), s))  # one key per block reading
    ds = ds.group_by_window(
        key_func=lambda key, s: key,
        reduce_func=lambda key, window: window.map(lambda k, s: (k % n, s)).batch(max_block),
        window_size_func=lambda key: tf.gather(counts, key % n))
    ds = ds.filter(lambda ids, s: tf.size(ids) >= 2)
    ds = ds.shuffle(block_buffer, seed=seed + 1)

    def to_pairs(block, rnd):
        ids, serialized = block
        order = tf.argsort(tf.random.stateless_uniform(tf.shape(ids), tf.stack([rnd, 0])))
        anchors = tf.gather(serialized, order)
        return anchors, tf.roll(anchors, -1, axis=0), ids

    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed + 2))).map(to_pairs)
    return ds.unbatch()


def other_photos(info, seed, shuffle_buffer=2048, cycle_length=16, counter=None, service_shard=False):
    """Dataset B: (photo, identity), shuffled record by record."""
    ds = _records(info.files, seed + 3, cycle_length, counter, service_shard=service_shard)
    ds = ds.shuffle(shuffle_buffer, seed=seed + 4)
    return ds.map(lambda s: (s, records.parse_identity(s)))


def check_cache_options(cache, identity_runs, shared_anchors):
    """ArgumentError for pair_dataset's options that only the cached pair graph has."""
    if identity_runs < 1:
        raise ArgumentError("identity_runs", identity_runs, "must be at least 1")
    for name, value, on in (("identity_runs", identity_runs, identity_runs > 1),
                            ("shared_anchors", shared_anchors, shared_anchors)):
        if on and not cache:
            raise ArgumentError(name, value, "works only with the cache")


def pair_dataset(info, batch_size=32, image_size=64, crop=preprocessing.DEFAULT_CROP, augment=False,
                 seed=0, shuffle_buffer=2048, pair_buffer=512, block_buffer=64, counter=None,
                 rotation_deg=preprocessing.DEFAULT_ROTATION_DEG, service_shard=False, gray_prob=0.0,
                 lowres_prob=0.0, cache=False, saturation=0.0, scale_jitter=preprocessing.SCALE_JITTER,
                 identity_runs=1, shared_anchors=False):
    """Batched balanced pairs from one split of a record set.

    Args:
      info: a records.Split (records.RecordSet(dir).split(name), or pairable_split()).
      batch_size: pairs per batch; even, half same and half different.
      image_size: side of the square images.
      crop: a crop name or spec (preprocessing.parse_crop), or a (top, left, height, width) box.
      augment: training augmentation (preprocessing.boxes and preprocessing.finish).
      seed: seeds every shuffle and random op: the same seed gives the same batches.
      shuffle_buffer, pair_buffer, block_buffer: the record, pair and identity-block
        shuffle buffers (each capped at what the split holds).
      counter: an int64 variable that, if given, counts every record read from disk.
      rotation_deg: with augment, random rotation up to +-this many degrees.
      gray_prob, lowres_prob: with augment, the chance an image is made grayscale,
        and made low-resolution (preprocessing.finish).
      saturation: with augment, colour jitter: saturation scaled by up to 1 +- this.
      scale_jitter: with augment, each crop box scaled by a factor in 1 +- this.
      service_shard: for tf.data service workers (ShardingPolicy.HINT): each worker
        reads its own shards, so two workers never make the same pairs; the split
        needs at least as many shards as workers. Only usable through the service.
      cache: decode every photo once and make pairs from memory (see the module
        doc; cache_bytes says how much). shuffle_buffer, pair_buffer and
        block_buffer do not apply (the shuffles are full). With service_shard each
        tf.data service worker caches the whole split and makes its own epochs
        (worker i of n gets epochs i, i + n, ...: other permutations, other pairs).
      identity_runs: with cache, the epoch's shuffle moves runs of up to this many
        pairs of one identity (consecutive anchors and their positives): the
        all-pairs loss then sees more same-person pairs a batch.
      shared_anchors: with cache, each anchor is rendered (cropped and augmented)
        once for its same and its different pair: image_a holds every render
        twice in a row (pairs 2k and 2k+1), so a training graph can run the tower
        once on image_a[::2] (FaceNet's triplet: one anchor, a positive, a negative).
    Returns:
      A tf.data.Dataset of dicts: image_a, image_b (float32 [B, S, S, 3]); label
      (int32 [B], 0 same, 1 different); identity_a, identity_b (int64 [B]);
      filename_a, filename_b (string [B]).
    """
    if batch_size < 2 or batch_size % 2:
        raise ArgumentError("batch_size", batch_size, "must be even and at least 2 (half same, "
                            "half different pairs)")
    check_cache_options(cache, identity_runs, shared_anchors)
    check_pairable(info)
    box = preprocessing.parse_crop(crop) if isinstance(crop, str) else crop

    def finish(batch, rnd):
        seeds = tf.random.experimental.stateless_split(tf.stack([rnd, 11]), 2) if augment else [None, None]
        batch = dict(batch)
        batch["image_a"] = preprocessing.finish(batch["image_a"], seeds[0], rotation_deg, gray_prob, lowres_prob,
                                                saturation)
        batch["image_b"] = preprocessing.finish(batch["image_b"], seeds[1], rotation_deg, gray_prob, lowres_prob,
                                                saturation)
        return batch

    if cache:
        def finish_all(images, rnd):  # image_a and image_b as one batch: half the ops; pixels in [0, 255]
            return preprocessing.finish(images, tf.stack([rnd, 11]) if augment else None, rotation_deg,
                                        gray_prob, lowres_prob, saturation, scale=255.0)

        return _cached_pair_dataset(info, batch_size, image_size, box, augment, seed, counter, finish_all,
                                    service_shard, scale_jitter, identity_runs, shared_anchors)
    # a buffer larger than the split would only hold the split several times over
    shuffle_buffer, pair_buffer = min(shuffle_buffer, info.photos), min(pair_buffer, info.photos)
    block_buffer = min(block_buffer, info.multi)
    triplets = tf.data.Dataset.zip((same_pairs(info, seed, block_buffer, counter=counter, service_shard=service_shard),
                                    other_photos(info, seed, shuffle_buffer, counter=counter,
                                                 service_shard=service_shard)))
    triplets = triplets.filter(lambda same, other: tf.not_equal(same[2], other[1]))
    triplets = triplets.shuffle(pair_buffer, seed=seed + 5)

    def decode(triplet, rnd):
        (anchor, positive, _), (other, _) = triplet
        parsed = [tf.io.parse_single_example(s, _META) for s in (anchor, positive, other)]
        images = [preprocessing.decode(p["image/encoded"]) for p in parsed]
        # the anchor is cropped twice (independent jitters when augmenting), one per pair
        b = preprocessing.boxes(box, 4, tf.stack([rnd, 7]) if augment else None, scale_jitter)
        a12 = preprocessing.crop_resize(images[0], image_size, b[:2])
        pos = preprocessing.crop_resize(images[1], image_size, b[2:3])[0]
        oth = preprocessing.crop_resize(images[2], image_size, b[3:])[0]
        a1, a2 = a12[0], a12[1]
        ident = [p["image/identity"] for p in parsed]
        name = [p["image/filename"] for p in parsed]
        return {"image_a": tf.stack([a1, a2]), "image_b": tf.stack([pos, oth]),
                "label": tf.constant([0, 1], tf.int32),
                "identity_a": tf.stack([ident[0], ident[0]]), "identity_b": tf.stack(ident[1:]),
                "filename_a": tf.stack([name[0], name[0]]), "filename_b": tf.stack(name[1:])}

    ds = tf.data.Dataset.zip((triplets, tf.data.Dataset.random(seed + 6)))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.unbatch().batch(batch_size, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed + 8)))
    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def cache_geometry(crop, image_size, augment, scale_jitter=preprocessing.SCALE_JITTER):
    """(outer box, (height, width)): the region of each photo the cache holds (the
    crop, enlarged by the jitter when augmenting) and its size in pixels, at the
    output's resolution (image_size pixels across the crop)."""
    h, w = crop[2], crop[3]
    # past the photo's edge the region is black, so every jittered box lies inside it
    outer = preprocessing.jitter_extent(crop, scale_jitter, clip=False) if augment else tuple(crop)
    return outer, (max(1, int(round(image_size * outer[2] / h))), max(1, int(round(image_size * outer[3] / w))))


def cache_bytes(info, image_size, crop=preprocessing.DEFAULT_CROP, augment=False,
                scale_jitter=preprocessing.SCALE_JITTER):
    """Bytes the cached pair graph holds for info's photos (uint8, one copy)."""
    box = preprocessing.parse_crop(crop) if isinstance(crop, str) else crop
    _, (height, width) = cache_geometry(box, image_size, augment, scale_jitter)
    return info.photos * height * width * 3


def record_blocks(info):
    """The split's records in reading order (its files in order) as identity blocks:
    (identities [N] int64, starts [M] int64, counts [M] int64), from the manifest."""
    blocks = [(identity, count) for shard in info.shards if shard["records"]
              for identity, count in shard["identities"]]
    counts = np.array([c for _, c in blocks], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    identities = np.repeat(np.array([i for i, _ in blocks], np.int64), counts)
    return identities, starts, counts


def cached_region(image, outer, size):
    """What the cache holds of one photo: uint8 [H, W, 3] -> uint8 [size[0], size[1], 3],
    the box outer (top, left, height, width fractions; black where it reaches past
    the photo), resized (cache_geometry gives both)."""
    t, l, h, w = outer
    region = tf.image.crop_and_resize(image[tf.newaxis], [[t, l, t + h, l + w]], [0], size, extrapolation_value=0.0)
    return tf.cast(tf.round(region[0]), tf.uint8)


def _photo_cache(info, ids, outer, size, counter):
    """A dataset repeating one element, decoded once: (photos uint8 [N, H, W, 3] of
    the region outer, filenames [N] string). ids [N]: the identity of each record
    by the manifest, checked against the records'."""
    ds = _counted(tf.data.TFRecordDataset(info.files), counter)

    def load(s):
        p = tf.io.parse_single_example(s, _META)
        photo = cached_region(preprocessing.decode(p["image/encoded"]), outer, size)
        return photo, p["image/filename"], p["image/identity"]

    def checked(photos, names, identities):
        check = tf.debugging.assert_equal(
            identities, ids, message="%s: %s; rewrite it with make_records --overwrite" % (info, MISMATCH))
        with tf.control_dependencies([check]):
            return tf.identity(photos), names

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(info.photos).map(checked).cache().repeat()


def _seeds(seed, service_shard):
    """Dataset.random(seed), dealt among tf.data service workers with service_shard."""
    ds = tf.data.Dataset.random(seed)
    return ds.shard(tf.data.experimental.SHARD_HINT, tf.data.experimental.SHARD_HINT) if service_shard else ds


def disagreement(error):
    """The one-line message of a TF error raised by the cache's identity check, else None."""
    found = re.search(r"\[([^\[\]]*%s[^\[\]]*)\]" % MISMATCH, str(getattr(error, "message", error)))
    return found.group(1).replace("\\'", "'") if found else None


def _epoch_triplets(blocks, ids, seed, service_shard=False, group=1):
    """A dataset of epochs, each int64 [K, 3] (anchor, positive, other) record
    indices, shuffled: every photo of a multi-photo identity is an anchor once.
    blocks: record_blocks(split); ids: its identities as a tensor. group > 1 keeps
    runs of up to that many triplets of one identity together (the shuffle moves
    runs, not triplets), as FaceNet's images_per_person."""
    identities, starts, counts = blocks
    multi = counts >= 2
    anchors = np.concatenate([np.arange(s, s + c) for s, c in zip(starts[multi], counts[multi])])
    block = np.repeat(np.arange(int(multi.sum())), counts[multi])  # block of each anchor
    first = np.repeat(np.concatenate([[0], np.cumsum(counts[multi])[:-1]]), counts[multi])
    last = np.append(block[1:] != block[:-1], True)  # the last anchor of its block
    n, m = len(identities), len(anchors)
    run = np.cumsum((np.arange(m) - first) % group == 0) - 1  # the run of each anchor, in block order

    def triplets(rnd):
        u = tf.random.stateless_uniform([m], tf.stack([rnd, 0]), dtype=tf.float64)
        order = tf.gather(tf.constant(anchors), tf.argsort(tf.constant(block, tf.float64) + u))
        positive = tf.where(tf.constant(last), tf.gather(order, tf.constant(first)), tf.roll(order, -1, 0))
        other = tf.argsort(tf.random.stateless_uniform([n], tf.stack([rnd, 1])))[:m]
        other = tf.cast(other, tf.int64)
        kept = tf.not_equal(tf.gather(ids, other), tf.gather(ids, order))
        t = tf.stack([order, positive, other], axis=1)
        if group == 1:  # the shuffle before runs existed: the same seed still gives the same batches
            t = tf.boolean_mask(t, kept)
            return tf.gather(t, tf.argsort(tf.random.stateless_uniform([tf.shape(t)[0]], tf.stack([rnd, 2]))))
        # one random key a run; the stable sort keeps each run's triplets in order
        keys = tf.gather(tf.random.stateless_uniform([int(run[-1]) + 1], tf.stack([rnd, 2])), tf.constant(run))
        runs = tf.argsort(keys, stable=True)
        return tf.boolean_mask(tf.gather(t, runs), tf.gather(kept, runs))

    return _seeds(seed + 2, service_shard).map(triplets)


def _cached_pair_dataset(info, batch_size, image_size, box, augment, seed, counter, finish, service_shard,
                         scale_jitter, group, shared_anchors):
    outer, size = cache_geometry(box, image_size, augment, scale_jitter)
    blocks = record_blocks(info)
    ids = tf.constant(blocks[0])  # one constant for the pairing, the labels and the check
    epochs = _epoch_triplets(blocks, ids, seed, service_shard, group)
    half = batch_size // 2
    renders_a = half if shared_anchors else batch_size  # images rendered for image_a

    def gather(cache, triplet, rnd):
        photos, names = cache
        a = tf.reshape(tf.stack([triplet[:, 0], triplet[:, 0]], axis=1), [-1])  # anchor twice
        b = tf.reshape(triplet[:, 1:], [-1])  # (positive, other) per triplet
        which = tf.concat([triplet[:, 0] if shared_anchors else a, b], axis=0)
        boxes = preprocessing.boxes(box, renders_a + batch_size, tf.stack([rnd, 7]) if augment else None,
                                    scale_jitter)
        images = finish(preprocessing.crop_resize_many(photos, which, preprocessing.within(boxes, outer), image_size),
                        rnd)
        image_a = images[:renders_a]
        return {"image_a": tf.repeat(image_a, 2, axis=0) if shared_anchors else image_a,
                "image_b": images[renders_a:],
                "label": tf.tile(tf.constant([0, 1], tf.int32), [half]),
                "identity_a": tf.gather(ids, a), "identity_b": tf.gather(ids, b),
                "filename_a": tf.gather(names, a), "filename_b": tf.gather(names, b)}

    ds = tf.data.Dataset.zip((_photo_cache(info, ids, outer, size, counter),
                              epochs.rebatch(half, drop_remainder=True),
                              _seeds(seed + 6, service_shard)))
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def inputs(records_dir, split, batch_size=32, image_size=64, crop=preprocessing.DEFAULT_CROP,
           augment=False, seed=0, **kwargs):
    """Graph tensors from a one-shot iterator over pair_dataset (see the module doc).

    Returns:
      (image_a, image_b, label): float32 [B, S, S, 3] twice and int32 [B].
    """
    ds = pair_dataset(pairable_split(records_dir, split), batch_size, image_size, crop, augment, seed,
                      **kwargs)
    batch = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
    return batch["image_a"], batch["image_b"], batch["label"]
