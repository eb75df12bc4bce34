"""The phone path's numpy reference (serving/phone.py): the crop and resize the exported model does, from the crop as preprocessing.json stores it."""

import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.data import preprocessing
from siamese_graph.serving import phone


@pytest.mark.parametrize("size", [(178, 218), (89, 109), (250, 250), (33, 20)])
@pytest.mark.parametrize("crop", ["celeba", "tight", "none", "center:0.6", "box:0.1,0.2,0.5,0.7"])
@pytest.mark.parametrize("image_size", [48, 64, 7])
def test_phone_face_is_crop_and_resize(size, crop, image_size):
    rng = np.random.RandomState(sum(size) + image_size)
    rgb = rng.randint(0, 256, (size[1], size[0], 3)).astype(np.uint8)
    box = preprocessing.parse_crop(crop)
    want = preprocessing.crop_resize(tf.constant(rgb), image_size, preprocessing.boxes(box))[0].numpy()
    got = phone.phone_face(rgb, box, image_size)
    assert got.shape == want.shape == (image_size, image_size, 3) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5


def test_phone_face_reads_the_crop_as_the_export_stores_it():
    """tflite/preprocessing.json stores the crop as an object (top, left, height,
    width, units): the phone reference takes it as the phone reads it."""
    rgb = np.random.RandomState(2).randint(0, 256, (218, 178, 3)).astype(np.uint8)
    box = preprocessing.parse_crop("celeba")
    stored = {"top": box[0], "left": box[1], "height": box[2], "width": box[3],
              "units": "fractions of the photo's height and width"}
    assert np.array_equal(phone.phone_face(rgb, stored, 48), phone.phone_face(rgb, box, 48))
