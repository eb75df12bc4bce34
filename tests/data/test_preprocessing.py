"""The shared preprocessing: shapes, standardization, crops, seeded augmentation."""
import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.data import preprocessing
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


def test_the_tight_crop_is_the_celeba_box_at_three_quarters_about_its_centre():
    t, l, h, w = preprocessing.parse_crop("celeba")
    tt, tl, th, tw = preprocessing.parse_crop("tight")
    assert (th, tw) == pytest.approx((0.75 * h, 0.75 * w))
    assert (tt + th / 2, tl + tw / 2) == pytest.approx((t + h / 2, l + w / 2))
    # square in CelebA's 178x218 layout, as the celeba box is: 103.5 pixels a side
    assert (th * 218, tw * 178) == pytest.approx((103.5, 103.5))


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


def test_crop_resize_many_is_crop_and_resize_of_the_snapped_boxes():
    """Slices plus ResizeBilinear give crop_and_resize's crops of the boxes snapped to
    whole pixels, mirrored ones included; snapping moves a corner by at most half a pixel."""
    rng = np.random.RandomState(4)
    images = tf.constant(rng.randint(0, 256, (5, 40, 30, 3)).astype(np.uint8))
    which = tf.constant([0, 4, 2, 2, 1, 3, 0, 4])
    boxes = preprocessing.boxes((0.2, 0.15, 0.6, 0.7), 8, tf.constant([3, 9]), scale_jitter=0.2).numpy()
    assert (boxes[:, 1] > boxes[:, 3]).any() and (boxes[:, 1] < boxes[:, 3]).any()  # both orientations
    snapped = preprocessing.snap(tf.constant(boxes), 40, 30).numpy()
    pixels = np.array([39, 29, 39, 29], np.float32)
    assert np.abs(snapped - boxes).max() > 0  # the boxes did move
    assert (np.abs(snapped - boxes) * pixels).max() <= 0.5 + 1e-4
    np.testing.assert_allclose(snapped * pixels, np.round(snapped * pixels), atol=1e-3)
    got = preprocessing.crop_resize_many(images, which, tf.constant(boxes), 24).numpy()
    want = tf.image.crop_and_resize(images, snapped, which, [24, 24]).numpy()
    assert got.shape == (8, 24, 24, 3)
    assert preprocessing.crop_resize_many(images, which, tf.constant(boxes), 24).shape.as_list() == [8, 24, 24, 3]
    np.testing.assert_allclose(got, want, atol=2e-3)
    mirrored = boxes[:, [0, 3, 2, 1]]
    flipped = preprocessing.crop_resize_many(images, which, tf.constant(mirrored), 24).numpy()
    np.testing.assert_allclose(flipped, got[:, :, ::-1], atol=2e-3)


def test_finish_of_pixels_in_0_255_is_finish_of_pixels_in_0_1():
    """finish(scale=255) folds the division into the contrast step: the same images."""
    x = batch(6, 24)
    seed = tf.constant([5, 6])
    for kw in ({}, {"seed": seed}, {"seed": seed, "gray_prob": 0.5, "lowres_prob": 0.5, "rotation_deg": 8}):
        a = preprocessing.finish(x, **kw).numpy()
        b = preprocessing.finish(x * 255.0, scale=255.0, **kw).numpy()
        np.testing.assert_allclose(a, b, atol=2e-4)
        assert np.abs(a).max() > 0.5


def test_training_finish_is_the_brightness_contrast_clip_then_per_image_standardization():
    """finish with a seed clips and standardizes in fewer passes: the result is
    brightness and contrast, clipped to [0, 1], then tf.image.per_image_standardization,
    written out here the plain way with the same random draws. Dark and bright
    photos (most pixels clipped) and a constant one included."""
    rng = np.random.RandomState(7)
    x = np.concatenate([rng.uniform(0, 1, (5, 24, 24, 3)), rng.uniform(0, 0.1, (2, 24, 24, 3)),
                        rng.uniform(0.9, 1, (2, 24, 24, 3)), np.full((1, 24, 24, 3), 0.5)]).astype(np.float32)
    for scale in (1.0, 255.0):
        images = tf.constant(x * scale)
        seed = tf.constant([3, 4])
        _, factor, shift = preprocessing.exposure_draws(seed, 10)
        # the draws are what their docstring says
        assert np.all((factor.numpy() >= preprocessing.CONTRAST_RANGE[0]) &
                      (factor.numpy() <= preprocessing.CONTRAST_RANGE[1]))
        assert np.all(np.abs(shift.numpy()) <= preprocessing.MAX_BRIGHTNESS) and np.ptp(factor.numpy()) > 0.1
        plain = images / scale
        mean = tf.reduce_mean(plain, axis=[1, 2, 3], keepdims=True)
        adjusted = tf.clip_by_value((plain - mean) * factor + mean + shift, 0.0, 1.0)
        expected = tf.image.per_image_standardization(adjusted).numpy()
        got = preprocessing.finish(images, seed, 0, scale=scale).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert np.abs(got).max() > 1 and not np.any(got[-1])
        # most pixels of the dark and bright photos are clipped: the clip is exercised
        assert (adjusted.numpy()[5:9] == 0).mean() + (adjusted.numpy()[5:9] == 1).mean() > 0.3


# --- grayscale and low-resolution augmentation, and evaluate's --degrade ----------------

def batch(n=6, size=32):
    rng = np.random.RandomState(3)
    return tf.constant(rng.uniform(0, 1, (n, size, size, 3)).astype(np.float32))


def high_frequency(x):
    return float(np.mean(np.abs(np.diff(x, axis=2))))


def test_gray_and_lowres_augmentation_seeded_and_training_only():
    images, seed = batch(), tf.constant([4, 2])
    gray = preprocessing.finish(images, seed, 0, gray_prob=1.0).numpy()
    assert np.allclose(gray[..., 0], gray[..., 1], atol=1e-5) and np.allclose(gray[..., 1], gray[..., 2], atol=1e-5)
    plain = preprocessing.finish(images, seed, 0).numpy()
    assert not np.allclose(plain[..., 0], plain[..., 1], atol=1e-2)
    low = preprocessing.finish(images, seed, 0, lowres_prob=1.0).numpy()
    assert high_frequency(low) < 0.6 * high_frequency(plain)
    again = preprocessing.finish(images, seed, 0, gray_prob=0.5, lowres_prob=0.5).numpy()
    assert np.array_equal(again, preprocessing.finish(images, seed, 0, gray_prob=0.5, lowres_prob=0.5).numpy())
    # a half chance touches some images of a batch, not all and not none
    mixed = preprocessing.finish(batch(64), tf.constant([1, 1]), 0, gray_prob=0.5).numpy()
    is_gray = [np.allclose(m[..., 0], m[..., 2], atol=1e-5) for m in mixed]
    assert 10 < sum(is_gray) < 54
    # no seed (evaluation): no augmentation whatever the chances
    assert np.array_equal(preprocessing.finish(images, None, 0, 1.0, 1.0).numpy(),
                          preprocessing.finish(images).numpy())


def test_black_border_keeps_the_box_and_blackens_the_rest():
    images = tf.ones([2, 10, 10, 3])
    margins = tf.constant([[0.2, 0.0], [0.1, 0.0], [0.3, 0.0], [0.0, 0.0]])  # top, left, bottom, right
    out = preprocessing._black_border(images, tf.constant([True, False]), margins).numpy()
    want = np.zeros((10, 10))
    want[2:7, 1:10] = 1  # rows from 0.2 up to 0.7 of the side, columns from 0.1
    assert np.array_equal(out[0, ..., 0], want) and (out[0] == out[0, ..., :1]).all()
    assert (out[1] == 1).all()  # not drawn: untouched


def test_border_augmentation_seeded_training_only_and_leaves_the_other_draws():
    images, seed = batch(64), tf.constant([3, 5])
    plain = preprocessing.finish(images, seed, 0, gray_prob=0.4).numpy()
    half = preprocessing.finish(images, seed, 0, gray_prob=0.4, border_prob=0.5).numpy()
    touched = [not np.allclose(p, h) for p, h in zip(plain, half)]
    assert 10 < sum(touched) < 54  # a half chance: some images, not all, not none
    # the untouched ones are exactly what they were: the other draws did not move
    assert all(np.array_equal(p, h) for p, h, t in zip(plain, half, touched) if not t)
    # a touched image's corner is its darkest value (black before standardization)
    i = touched.index(True)
    border = preprocessing.finish(images[i:i + 1] * 0 + 200.0 / 255, seed, 0, border_prob=1.0).numpy()[0]
    assert border[0, 0, 0] < border[border.shape[0] // 2, border.shape[1] // 2, 0] or border[-1, -1, 0] < border[
        border.shape[0] // 2, border.shape[1] // 2, 0]
    assert np.array_equal(preprocessing.finish(images, None, 0, border_prob=1.0).numpy(),
                          preprocessing.finish(images).numpy())


def test_saturate_makes_gray_and_keeps_the_luma():
    images = batch(16)
    gray = preprocessing._saturate(images, tf.zeros([16])).numpy()
    assert np.allclose(gray[..., 0], gray[..., 2], atol=1e-6) and not np.allclose(
        images.numpy()[..., 0], images.numpy()[..., 2], atol=1e-3)
    luma = lambda x: (x * np.array(preprocessing.LUMA)).sum(-1)  # noqa: E731
    more = preprocessing._saturate(images, tf.fill([16], 1.4)).numpy()
    assert np.allclose(luma(more), luma(images.numpy()), atol=1e-5)  # brightness kept
    assert np.allclose(luma(gray), luma(images.numpy()), atol=1e-5)
    assert np.array_equal(preprocessing._saturate(images, tf.ones([16])).numpy(), images.numpy())


def test_degrade_photos():
    from PIL import Image

    from siamese_graph.data import photos

    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, (40, 36, 3)).astype(np.uint8)
    gray = photos.degrade(rgb, photos.parse_degrade("grayscale"))
    assert gray.shape == rgb.shape and (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert (gray[..., 0] == np.asarray(Image.fromarray(rgb).convert("L"))).all()
    low = photos.degrade(rgb, photos.parse_degrade("downscale:4"))
    assert low.shape == rgb.shape and high_frequency(low.astype(float)) < 0.5 * high_frequency(rgb.astype(float))
    both = photos.degrade(rgb, photos.parse_degrade("grayscale,downscale:2"))
    assert both.shape == rgb.shape and (both[..., 0] == both[..., 2]).all()
    for bad in ("sepia", "downscale:1", "downscale:x", "grayscale:2", ""):
        with pytest.raises(ValueError, match="expected grayscale"):
            photos.parse_degrade(bad)
