"""The shared preprocessing: shapes, standardization, crops, seeded augmentation."""
import numpy as np
import pytest
import tensorflow as tf

from siamese_graph import preprocessing
from siamese_graph.errors import ArgumentError


def photo(h=218, w=178):
    rng = np.random.RandomState(0)
    return tf.constant(rng.randint(0, 255, (h, w, 3)).astype(np.uint8))


def test_output_shape_and_standardized():
    out = preprocessing.preprocess(photo(), 48).numpy()
    assert out.shape == (48, 48, 3) and out.dtype == np.float32
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3


def test_crop_takes_the_box():
    img = np.zeros((100, 100, 3), np.uint8)
    img[20:60, 30:70] = 255  # a white square exactly at box (0.2, 0.3, 0.4, 0.4)
    out = preprocessing.crop_resize(tf.constant(img), 16, preprocessing.boxes((0.2, 0.3, 0.4, 0.4)))
    assert out.shape == (1, 16, 16, 3)
    assert out.numpy()[0, 1:-1, 1:-1].min() > 0.99  # all white inside, bar the resampled rim


def test_parse_crop():
    assert preprocessing.parse_crop("none") == (0, 0, 1, 1)
    assert preprocessing.parse_crop("center:0.6") == pytest.approx((0.2, 0.2, 0.6, 0.6))
    assert preprocessing.parse_crop("box:0.1,0.2,0.5,0.5") == (0.1, 0.2, 0.5, 0.5)
    for bad in ("centre:0.5", "center:1.5", "box:0.6,0,0.6,0.5", "box:1,2"):
        with pytest.raises(ArgumentError, match="crop") as e:
            preprocessing.parse_crop(bad)
        assert e.value.name == "crop" and e.value.value == bad


def test_augmentation_is_seeded_and_changes_the_image():
    img = photo()
    a = preprocessing.preprocess(img, 32, augment=True, seed=tf.constant([1, 2]), rotation_deg=8)
    b = preprocessing.preprocess(img, 32, augment=True, seed=tf.constant([1, 2]), rotation_deg=8)
    c = preprocessing.preprocess(img, 32, augment=True, seed=tf.constant([3, 2]), rotation_deg=8)
    plain = preprocessing.preprocess(img, 32)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(a.numpy() - c.numpy()).mean() > 0.1
    assert np.abs(a.numpy() - plain.numpy()).mean() > 0.1


def test_mirror_box_flips():
    img = tf.constant(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3)))
    box = preprocessing.boxes((0, 0, 1, 1))
    flipped = tf.stack([box[:, 0], box[:, 3], box[:, 2], box[:, 1]], axis=1)
    a = preprocessing.crop_resize(img, 64, box).numpy()[0]
    b = preprocessing.crop_resize(img, 64, flipped).numpy()[0]
    np.testing.assert_allclose(a[:, ::-1], b, atol=1e-5)
