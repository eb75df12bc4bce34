"""The cached pair graph (pair_cache.py): epochs of anchors, the cached region holds every jittered box, its photos are the records' photos, its memory bound."""

import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.data import pair_cache, pairs, preprocessing
from tests.data.test_pairs import batches


def test_cached_epochs_make_every_anchor_once_with_a_positive_of_its_identity(synthetic_records):
    info = pairs.pairable_split(synthetic_records[0], "train")
    blocks = pair_cache.record_blocks(info)
    identities, starts, counts = blocks
    assert len(identities) == info.photos and sorted(counts) == sorted(c for c in info.counts if c)
    with tf.Graph().as_default():
        epochs = pair_cache._epoch_triplets(blocks, tf.constant(identities), seed=3)
        nxt = tf.compat.v1.data.make_one_shot_iterator(epochs).get_next()
        with tf.compat.v1.Session() as sess:
            first, second = sess.run(nxt), sess.run(nxt)
    multi = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts) if c >= 2])
    for t in (first, second):
        a, p, o = t.T
        assert np.all(identities[a] == identities[p]) and np.all(a != p)  # same pairs: two photos of one person
        assert np.all(identities[a] != identities[o])  # different pairs
        assert len(set(a)) == len(a) and set(a) <= set(multi)  # an anchor at most once an epoch
        assert len(a) >= 0.7 * len(multi)  # only anchors whose other photo had their identity are dropped
        assert len(set(o)) == len(o)  # the other photos: a permutation of the split
        # shuffled: one identity's anchors are spread, not kept side by side
        spans = 1 + np.count_nonzero(identities[a][1:] != identities[a][:-1])
        assert spans > 0.8 * len(a)
    assert not np.array_equal(first, second)  # reshuffled each epoch


@pytest.mark.parametrize("crop,scale_jitter", [("celeba", preprocessing.SCALE_JITTER), ("celeba", 0.25),
                                               ("none", preprocessing.SCALE_JITTER)])
def test_cache_region_holds_every_jittered_box_and_crops_like_the_photo(crop, scale_jitter):
    from tests.conftest import face

    box = preprocessing.CROPS[crop]
    outer, size = pair_cache.cache_geometry(box, 48, augment=True, scale_jitter=scale_jitter)
    t, l, h, w = outer
    jittered = preprocessing.boxes(box, 4000, tf.constant([1, 2]), scale_jitter).numpy()
    heights = np.abs(jittered[:, 2] - jittered[:, 0]) / box[2]  # the scale factors drawn
    assert heights.min() < 1 - 0.9 * scale_jitter and heights.max() > 1 + 0.9 * scale_jitter
    # the region reaches past the photo where the jitter does (there both crops are black)
    assert (t < 0) == (jittered[:, 0].min() < 0) and (l < 0) == (jittered[:, [1, 3]].min() < 0)
    inside = (np.minimum(jittered[:, [0, 2]], jittered[:, [2, 0]])[:, 0] >= t - 1e-6) & \
             (np.maximum(jittered[:, 0], jittered[:, 2]) <= t + h + 1e-6) & \
             (np.minimum(jittered[:, 1], jittered[:, 3]) >= l - 1e-6) & \
             (np.maximum(jittered[:, 1], jittered[:, 3]) <= l + w + 1e-6)
    assert inside.all()
    assert outer[2] > box[2] and size[0] == round(48 * outer[2] / box[2])
    # a crop from the cached region is the crop from the photo, up to the second resampling
    from PIL import ImageFilter
    # a photo's detail, not pixel noise (celeba-mini's photos: 0.018 at 48, bench/pairs.py)
    photo = tf.constant(np.asarray(face(3, 1, size=(178, 218)).filter(ImageFilter.GaussianBlur(1.5))))
    b = preprocessing.boxes(box, 16, tf.constant([5, 6]), scale_jitter)
    direct = preprocessing.crop_resize(photo, 48, b)
    cached = preprocessing.crop_resize_many(pair_cache.cached_region(photo, outer, size)[None], tf.zeros([16], tf.int32),
                                            preprocessing.within(b, outer), 48) / 255.0
    assert float(tf.reduce_mean(tf.abs(direct - cached))) < 0.03
    # mirrored crops stay mirrored, black borders stay where the box leaves the photo
    np.testing.assert_array_equal(tf.reduce_mean(direct, [1, 2, 3]).numpy() < 0.02,
                                  tf.reduce_mean(cached, [1, 2, 3]).numpy() < 0.02)
    left_dark = lambda x: tf.reduce_mean(x[:, :, :2], [1, 2, 3]).numpy() < 0.01
    np.testing.assert_array_equal(left_dark(direct), left_dark(cached))
    # without augmentation the cache holds the crop itself, at the output's size: no resampling
    assert pair_cache.cache_geometry(box, 48, augment=False) == (box, (48, 48))


def test_cached_pairs_are_the_records_photos(synthetic_records):
    """Unaugmented, a cached pair's images are its photos' own crops (to uint8 rounding)."""
    records_dir = synthetic_records[0]
    photos = {}
    for path in pairs.pairable_split(records_dir, "train").files:
        for s in tf.data.TFRecordDataset(path):
            ex = tf.train.Example.FromString(s.numpy())
            photos[ex.features.feature["image/filename"].bytes_list.value[0]] = \
                ex.features.feature["image/encoded"].bytes_list.value[0]
    b = batches(records_dir, 1, cache=True)[0]
    for images, names in ((b["image_a"], b["filename_a"]), (b["image_b"], b["filename_b"])):
        for image, name in zip(images, names):
            want = preprocessing.preprocess(preprocessing.decode(photos[name]), 16).numpy()
            assert np.abs(image - want).max() < 0.05, name


def test_cache_bytes_and_refusals(synthetic_records):
    info = pairs.pairable_split(synthetic_records[0], "train")
    outer, (h, w) = pair_cache.cache_geometry(preprocessing.CROPS["celeba"], 32, True)
    assert pair_cache.cache_bytes(info, 32, "celeba", augment=True) == info.photos * h * w * 3
