"""Galleries (inference/galleries.py): enrolling from a folder or a dict, the file's
round trip and its refusals, identification's nearest, unknown and no_face."""
import numpy as np
import pytest

from siamese_graph.data import photos
from siamese_graph.errors import DataError
from siamese_graph.inference import galleries, models
from tests.conftest import make_people


@pytest.fixture(scope="module")
def model(tiny_model):
    return models.Model(tiny_model)


def test_enroll_a_dict_or_a_folder_alike_and_the_file_round_trips(model, tmp_path):
    root = make_people(tmp_path / "people", 0, 3, 4)
    from_folder = galleries.enroll(model, str(root), 2, photos.load_photo, 0.0)
    as_dict = {"p%d" % i: sorted(str(p) for p in (root / ("p%d" % i)).iterdir()) for i in range(3)}
    from_dict = galleries.enroll(model, as_dict, 2, photos.load_photo, 0.0)
    names, rows, feats, files, skipped = from_folder
    assert names == ["p0", "p1", "p2"] and rows.tolist() == [0, 0, 1, 1, 2, 2] and skipped == []
    assert from_dict[0] == names and np.allclose(from_dict[2], feats) and from_dict[3] == files
    galleries.save_gallery(str(tmp_path / "g.npz"), model, names, rows, feats, files)
    back = galleries.load_gallery(str(tmp_path / "g.npz"), model)
    assert back[0] == names and np.array_equal(back[1], rows) and np.allclose(back[2], feats)
    with pytest.raises(DataError, match="not a gallery file"):
        (tmp_path / "bad.npz").write_bytes(b"junk")
        galleries.load_gallery(str(tmp_path / "bad.npz"), model)


def test_identify_nearest_unknown_and_no_face(model, tmp_path):
    root = make_people(tmp_path / "people", 0, 3, 4)
    names, rows, feats, _, _ = galleries.enroll(model, str(root), 3, photos.load_photo, 0.0)
    probe = model.embed([photos.load_photo(str(root / "p1" / "3.png"))])
    nan = np.full_like(probe, np.nan)
    answers = galleries.identify(model, names, rows, feats, np.vstack([probe, probe, nan]), None,
                                 np.array([1.0, 0.1, 1.0]), 0.5)
    assert answers[0][0] in names and answers[0][1] == answers[0][0]
    assert answers[1][0] == "no_face" and answers[2][0] == "no_face"  # a low face probability, NaN features
    far = galleries.identify(model, names, rows, feats, probe, answers[0][2] / 2, np.array([1.0]), 0.5)
    assert far[0][0] == "unknown" and far[0][1] == answers[0][0]  # nearer than the threshold: no name
