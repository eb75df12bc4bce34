"""inference: thresholds checked wherever they are read, artefacts checked against what
they describe (model.json against the checkpoint's variables), verdicts."""
import json
import math
import os
import shutil

import pytest

from siamese_graph import inference
from siamese_graph.errors import DataError
from tests.conftest import SYNTHETIC, face, run_cli


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0, "0.5", True, None])
def test_check_threshold_refuses_what_no_verdict_can_use(bad):
    with pytest.raises(DataError, match="threshold"):
        inference.check_threshold(bad, "--threshold")


def test_check_threshold_keeps_a_positive_distance():
    assert inference.check_threshold(0.73, "x") == 0.73
    assert inference.check_threshold(2, "x") == 2.0


def test_verdict():
    assert inference.verdict(0.2, 0.5) == "same"
    assert inference.verdict(0.7, 0.5) == "different"
    assert inference.verdict(0.2, None) == "uncalibrated"
    assert inference.verdict(0.2, 0.5, face_a=0.1) == "no_face"
    assert inference.verdict(0.2, 0.5, face_b=float("nan")) == "no_face"
    assert inference.verdict(float("nan"), 0.5) == "no_face"
    assert inference.verdict(0.2, 0.5, 0.1, 0.1, min_face_probability=0) == "same"


@pytest.fixture
def trained(tiny_model):
    return tiny_model


@pytest.mark.parametrize("value", ["NaN", "-1", "1e309", "0"])
def test_an_edited_threshold_file_is_refused(trained, tmp_path, value):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "threshold.json").write_text('{"threshold": %s, "flip_average": true}' % value)
    with pytest.raises(DataError, match="threshold.json: threshold .* not a finite distance above 0"):
        inference.Model(str(run)).threshold()


def test_threshold_records_its_crop_and_refuses_another(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    model = inference.Model(str(run))
    saved = json.load(open(model.save_threshold(0.8, "test")))
    assert saved["crop"] == [float(v) for v in model.crop]
    assert model.threshold() == 0.8
    with pytest.raises(DataError, match="calibrated with another crop"):
        inference.Model(str(run), crop="center:0.6").threshold()
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
        inference.Model(str(run))


def test_nonsense_thresholds_are_refused_by_every_command(trained, tmp_path):
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    face(1, 1).save(a)
    face(2, 1).save(b)
    for value, needle in (("nan", "--threshold=nan: must be a finite number"), ("inf", "--threshold=inf: must be a "
                          "finite number"), ("-1", "--threshold: threshold -1.0 is not a finite distance above 0")):
        r = run_cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % trained, "--threshold=%s" % value, a, b)
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli("siamese_graph.export", "--checkpoint_dir=%s" % trained, "--output_dir=%s" % (tmp_path / "x"),
                "--threshold=0")
    assert r.returncode == 1 and "not a finite distance above 0" in r.stderr and not (tmp_path / "x").exists()
    assert math.isnan(float("nan"))
    assert not os.path.exists(os.path.join(trained, "threshold.json"))
