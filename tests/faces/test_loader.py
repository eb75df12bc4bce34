"""The photo loader (faces/loader.py): no face gives None, a face gives the aligned face; --align=none takes the picture as it is."""

import numpy as np

from siamese_graph.faces import loader
from tests.conftest import real


def test_loader_gives_none_without_a_face_and_an_aligned_face_with_one(face_photos):
    load = loader.PhotoLoader("mtcnn")
    assert load(face_photos["black"]) is None and load(face_photos["noise"]) is None
    got = load(real(face_photos)[0])
    assert got.shape == (218, 178, 3) and got.dtype == np.uint8
    assert load.no_face() == [face_photos["black"], face_photos["noise"]]
    assert load.found[real(face_photos)[0]]["kept"]["confidence"] >= 0.9
    plain = loader.PhotoLoader("none")
    assert plain(face_photos["black"]) is not None  # no detection: the picture as it is
