"""Pairs from decoded photos kept in memory (--cache): decode once, pair record indices per epoch.
"""
import numpy as np
import tensorflow as tf

from siamese_graph.data import preprocessing, records

MISMATCH = "the identities in the records disagree with the identity blocks in the manifest"


def counted(records_ds, counter):
    """records_ds, adding 1 to the int64 variable counter (if any) for every record read."""
    if counter is None:
        return records_ds

    def count(s):
        with tf.control_dependencies([counter.assign_add(1)]):
            return tf.identity(s)

    return records_ds.map(count)


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
    ds = counted(tf.data.TFRecordDataset(info.files), counter)

    def load(s):
        p = tf.io.parse_single_example(s, records.META_FEATURES)
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


def _epoch_triplets(blocks, ids, seed, service_shard=False):
    """A dataset of epochs, each int64 [K, 3] (anchor, positive, other) record
    indices, shuffled: every photo of a multi-photo identity is an anchor once.
    blocks: record_blocks(split); ids: its identities as a tensor."""
    identities, starts, counts = blocks
    multi = counts >= 2
    anchors = np.concatenate([np.arange(s, s + c) for s, c in zip(starts[multi], counts[multi])])
    block = np.repeat(np.arange(int(multi.sum())), counts[multi])  # block of each anchor
    first = np.repeat(np.concatenate([[0], np.cumsum(counts[multi])[:-1]]), counts[multi])
    last = np.append(block[1:] != block[:-1], True)  # the last anchor of its block
    n, m = len(identities), len(anchors)

    def triplets(rnd):
        u = tf.random.stateless_uniform([m], tf.stack([rnd, 0]), dtype=tf.float64)
        order = tf.gather(tf.constant(anchors), tf.argsort(tf.constant(block, tf.float64) + u))
        positive = tf.where(tf.constant(last), tf.gather(order, tf.constant(first)), tf.roll(order, -1, 0))
        other = tf.argsort(tf.random.stateless_uniform([n], tf.stack([rnd, 1])))[:m]
        other = tf.cast(other, tf.int64)
        kept = tf.not_equal(tf.gather(ids, other), tf.gather(ids, order))
        t = tf.boolean_mask(tf.stack([order, positive, other], axis=1), kept)
        return tf.gather(t, tf.argsort(tf.random.stateless_uniform([tf.shape(t)[0]], tf.stack([rnd, 2]))))

    return _seeds(seed + 2, service_shard).map(triplets)


def cached_pair_dataset(info, batch_size, image_size, box, augment, seed, counter, finish, service_shard,
                        scale_jitter):
    """pairs.pair_dataset with cache=True: batches gathered from the decoded photos."""
    outer, size = cache_geometry(box, image_size, augment, scale_jitter)
    blocks = record_blocks(info)
    ids = tf.constant(blocks[0])  # one constant for the pairing, the labels and the check
    epochs = _epoch_triplets(blocks, ids, seed, service_shard)
    half = batch_size // 2

    def gather(cache, triplet, rnd):
        photos, names = cache
        a = tf.reshape(tf.stack([triplet[:, 0], triplet[:, 0]], axis=1), [-1])  # anchor twice
        b = tf.reshape(triplet[:, 1:], [-1])  # (positive, other) per triplet
        which = tf.concat([a, b], axis=0)
        boxes = preprocessing.boxes(box, 2 * batch_size, tf.stack([rnd, 7]) if augment else None, scale_jitter)
        images = finish(preprocessing.crop_resize_many(photos, which, preprocessing.within(boxes, outer), image_size),
                        rnd)
        return {"image_a": images[:batch_size], "image_b": images[batch_size:],
                "label": tf.tile(tf.constant([0, 1], tf.int32), [half]),
                "identity_a": tf.gather(ids, a), "identity_b": tf.gather(ids, b),
                "filename_a": tf.gather(names, a), "filename_b": tf.gather(names, b)}

    ds = tf.data.Dataset.zip((_photo_cache(info, ids, outer, size, counter),
                              epochs.rebatch(half, drop_remainder=True),
                              _seeds(seed + 6, service_shard)))
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
