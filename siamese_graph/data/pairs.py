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

import tensorflow as tf

from siamese_graph.data import pair_cache, preprocessing, records
from siamese_graph.errors import ArgumentError, DataError


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
        records_ds = pair_cache.counted(tf.data.TFRecordDataset(path), counter)
        return records_ds.map(lambda s: (reading, s)) if tag else records_ds

    return ds.interleave(read, cycle_length=min(cycle_length, len(files)), block_length=1)




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


def pair_dataset(info, batch_size=32, image_size=64, crop=preprocessing.DEFAULT_CROP, augment=False,
                 seed=0, shuffle_buffer=2048, pair_buffer=512, block_buffer=64, counter=None,
                 rotation_deg=preprocessing.DEFAULT_ROTATION_DEG, service_shard=False, gray_prob=0.0,
                 lowres_prob=0.0, cache=False, scale_jitter=preprocessing.SCALE_JITTER, border_prob=0.0):
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
      border_prob: with augment, the chance an image gets a tight crop's black
        border (preprocessing.finish).
      gray_prob, lowres_prob: with augment, the chance an image is made grayscale,
        and made low-resolution (preprocessing.finish).
      scale_jitter: with augment, each crop box scaled by a factor in 1 +- this.
      service_shard: for tf.data service workers (ShardingPolicy.HINT): each worker
        reads its own shards, so two workers never make the same pairs; the split
        needs at least as many shards as workers. Only usable through the service.
      cache: decode every photo once and make pairs from memory (see the module
        doc; cache_bytes says how much). shuffle_buffer, pair_buffer and
        block_buffer do not apply (the shuffles are full). With service_shard each
        tf.data service worker caches the whole split and makes its own epochs
        (worker i of n gets epochs i, i + n, ...: other permutations, other pairs).
    Returns:
      A tf.data.Dataset of dicts: image_a, image_b (float32 [B, S, S, 3]); label
      (int32 [B], 0 same, 1 different); identity_a, identity_b (int64 [B]);
      filename_a, filename_b (string [B]).
    """
    if batch_size < 2 or batch_size % 2:
        raise ArgumentError("batch_size", batch_size, "must be even and at least 2 (half same, "
                            "half different pairs)")
    check_pairable(info)
    box = preprocessing.parse_crop(crop) if isinstance(crop, str) else crop

    def finish(batch, rnd):
        seeds = tf.random.experimental.stateless_split(tf.stack([rnd, 11]), 2) if augment else [None, None]
        batch = dict(batch)
        batch["image_a"] = preprocessing.finish(batch["image_a"], seeds[0], rotation_deg, gray_prob, lowres_prob,
                                                  border_prob=border_prob)
        batch["image_b"] = preprocessing.finish(batch["image_b"], seeds[1], rotation_deg, gray_prob, lowres_prob,
                                                  border_prob=border_prob)
        return batch

    if cache:
        def finish_all(images, rnd):  # image_a and image_b as one batch: half the ops; pixels in [0, 255]
            return preprocessing.finish(images, tf.stack([rnd, 11]) if augment else None, rotation_deg,
                                        gray_prob, lowres_prob, scale=255.0, border_prob=border_prob)

        return pair_cache.cached_pair_dataset(info, batch_size, image_size, box, augment, seed, counter, finish_all,
                                              service_shard, scale_jitter)
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
        parsed = [tf.io.parse_single_example(s, records.META_FEATURES) for s in (anchor, positive, other)]
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


def disagreement(error):
    """The one-line message of a TF error raised by the cache's identity check, else None."""
    found = re.search(r"\[([^\[\]]*%s[^\[\]]*)\]" % pair_cache.MISMATCH, str(getattr(error, "message", error)))
    return found.group(1).replace("\\'", "'") if found else None


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
