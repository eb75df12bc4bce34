"""The face check (faces/gate.py): ONet's face probability on faces and blank pictures, and the face box under every crop."""
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from siamese_graph.data import preprocessing
from siamese_graph.faces import align, gate
from tests.conftest import BLANKS, blank, shared

v1 = tf.compat.v1


def test_face_gate_tells_faces_from_blanks():
    celeba = sorted(os.listdir(os.path.join(shared("celeba-10k-lowres"), "img_align_celeba")))[:40]
    with tf.Graph().as_default():
        img = v1.placeholder(tf.uint8, [None, None, 3])
        prob = gate.face_probability(img, gate.face_box(preprocessing.parse_crop("celeba")))
        with v1.Session() as sess:
            real_probs = [sess.run(prob, {img: np.asarray(Image.open(os.path.join(
                shared("celeba-10k-lowres"), "img_align_celeba", n)).convert("RGB"))}) for n in celeba]
            blank_probs = [sess.run(prob, {img: blank(k)}) for k in BLANKS]
    assert np.mean(np.array(real_probs) >= gate.MIN_FACE_PROBABILITY) >= 0.95, real_probs
    assert max(blank_probs) < 0.05, blank_probs


def test_face_box_follows_the_crop():
    """face_box(crop) is where the face is in a photo whose celeba-crop region sits at
    `crop`: relative to that region it is one fixed box, whatever the crop's size and
    place; under the celeba crop it is in the aligned layout and holds the template's
    five points."""
    def in_region(crop):
        t, l, h, w = crop
        y1, x1, y2, x2 = gate.face_box(crop)
        return np.array([(y1 - t) / h, (x1 - l) / w, (y2 - t) / h, (x2 - l) / w])

    celeba = preprocessing.parse_crop("celeba")
    fy1, fx1, fy2, fx2 = gate.face_box(celeba)
    assert 0 < fx1 < fx2 < 1 and 0 < fy1 < fy2 < 1
    points = align.load_template()["points"] / np.array([align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT])  # (x, y)
    assert ((points[:, 0] > fx1) & (points[:, 0] < fx2) & (points[:, 1] > fy1) & (points[:, 1] < fy2)).all()
    t, l, h, w = celeba
    for other in [(t - h / 2, l - w / 2, 2 * h, 2 * w),  # twice as large around the same centre
                  (t + 0.07, l - 0.05, h, w),             # moved
                  (0.0, 0.0, 1.0, 1.0)]:                  # the photo is the region (--crop=none)
        assert np.allclose(in_region(other), in_region(celeba), atol=1e-9), other
    by1, bx1, by2, bx2 = gate.face_box((t - h / 2, l - w / 2, 2 * h, 2 * w))
    assert np.isclose(by2 - by1, 2 * (fy2 - fy1)) and np.isclose(bx2 - bx1, 2 * (fx2 - fx1))


def test_face_box_of_a_model_trained_on_another_framing():
    """A model trained on a tighter box of the aligned layout: an aligned photo (crop
    and framing the same box) has its face at the template's box, whatever the box;
    a photo that is the framing region itself (crop none) has the face box grown by
    the framing's ratio to the celeba crop."""
    celeba = preprocessing.parse_crop("celeba")
    t, l, h, w = celeba
    tight = (t + 0.1 * h, l + 0.1 * w, 0.8 * h, 0.8 * w)
    template_box = np.array(gate.face_box(celeba))
    assert np.allclose(gate.face_box(tight, tight), template_box, atol=1e-9)
    assert np.allclose(gate.face_box(celeba, celeba), template_box, atol=1e-9)
    whole = np.array(gate.face_box((0.0, 0.0, 1.0, 1.0), tight))
    y1, x1, y2, x2 = template_box
    assert np.isclose(whole[2] - whole[0], (y2 - y1) / (0.8 * h))
    assert np.isclose(whole[3] - whole[1], (x2 - x1) / (0.8 * w))
    # not the celeba crop's mapping: that one would put the face in a smaller box
    assert not np.allclose(whole, gate.face_box((0.0, 0.0, 1.0, 1.0)), atol=1e-3)
