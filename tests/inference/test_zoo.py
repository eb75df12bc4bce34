"""Packaged models (inference/zoo.py): a train_dir packaged into weights, model.json,
threshold and card restores to the same features, and holds nothing else."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.data import photos
from siamese_graph.errors import DataError
from siamese_graph.inference import models, zoo
from tests.conftest import face


def test_a_packaged_run_gives_the_runs_features(tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    with pytest.raises(DataError, match="no calibrated threshold"):
        zoo.package(str(run), str(tmp_path / "nope"), {})
    original = models.Model(str(run))
    original.save_threshold(0.5, "a test")
    card = zoo.package(str(run), str(tmp_path / "packed"), {"data": "synthetic", "seed": 0})
    packed = models.Model(str(tmp_path / "packed"))
    for i in range(3):
        face(i, 0, size=(64, 64)).save(tmp_path / ("%d.png" % i))
    x = [photos.load_photo(str(tmp_path / ("%d.png" % i))) for i in range(3)]
    assert np.allclose(packed.embed(x), original.embed(x), atol=1e-6)
    assert packed.threshold() == 0.5 and card["threshold"] == 0.5 and card["data"] == "synthetic"
    saved = tf.train.load_checkpoint(packed.checkpoint).get_variable_to_shape_map()
    assert saved and all(n.startswith(models.MODEL_SCOPES) and "Adam" not in n for n in saved)
    assert card["weights_bytes"] < sum(p.stat().st_size for p in run.glob(original.checkpoint.split("/")[-1] + ".*"))
    assert json.load(open(tmp_path / "packed" / "card.json"))["seed"] == 0


def test_an_unknown_packaged_model_is_named():
    with pytest.raises(DataError, match="no packaged model 'nope'"):
        zoo.path("nope")
