"""inference: thresholds checked wherever they are read, artefacts checked against what
they describe (model.json against the checkpoint's variables), verdicts."""
import json
import shutil

import pytest

from siamese_graph.errors import DataError
from siamese_graph.inference import models
from tests.conftest import SYNTHETIC, cli, face


def test_verdict():
    assert models.verdict(0.2, 0.5) == "same"
    assert models.verdict(0.7, 0.5) == "different"
    assert models.verdict(0.2, None) == "uncalibrated"
    assert models.verdict(0.2, 0.5, face_a=0.1) == "no_face"
    assert models.verdict(0.2, 0.5, face_b=float("nan")) == "no_face"
    assert models.verdict(float("nan"), 0.5) == "no_face"
    assert models.verdict(0.2, 0.5, 0.1, 0.1, min_face_probability=0) == "same"


@pytest.fixture
def trained(tiny_model):
    return tiny_model


@pytest.mark.parametrize("value", ["NaN", "-1", "1e309", "0"])
def test_an_edited_threshold_file_is_refused(trained, tmp_path, value):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "threshold.json").write_text('{"threshold": %s, "flip_average": true}' % value)
    with pytest.raises(DataError, match="threshold.json: threshold .* not a finite distance above 0"):
        models.Model(str(run)).threshold()


def test_threshold_records_its_crop_and_refuses_another(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    model = models.Model(str(run))
    saved = json.load(open(model.save_threshold(0.8, "test")))
    assert saved["crop"] == [float(v) for v in model.crop]
    assert model.threshold() == 0.8
    with pytest.raises(DataError, match="calibrated with another crop"):
        models.Model(str(run), crop="center:0.6").threshold()
    with pytest.raises(DataError, match="not a finite distance above 0"):
        model.save_threshold(-0.4455, "inverted labels")
    assert json.load(open(run / "threshold.json"))["threshold"] == 0.8  # the refused one was not written


def test_an_edited_model_json_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.load(open(run / "model.json"))
    assert config["head"] == "absdiff"
    config["head"] = "euclidean"  # restores partly (the tower), scores with other distances
    (run / "model.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="checkpoint variables do not match model.json .*head/dense"):
        models.Model(str(run))


def test_a_model_json_with_another_image_size_is_refused_in_one_line(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.load(open(run / "model.json"))
    assert config["image_size"] == 32
    config["image_size"] = 48  # valid for the net, not the size the checkpoint was trained at
    (run / "model.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=r"checkpoint variables do not match model.json \(.* is \[.*\] in the "
                                        r"checkpoint, \[.*\] as model.json builds it"):
        models.Model(str(run))
    a = str(tmp_path / "a.png")
    face(1, 1).save(a)
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % run, a, a)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Matrix size" not in r.stderr, r.stderr[-1500:]
    assert "model.json" in r.stderr.strip().splitlines()[-1]
