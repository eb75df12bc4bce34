"""inference: thresholds checked wherever they are read, artefacts checked against what
they describe (model.json against the checkpoint's variables), verdicts."""
import json
import os
import shutil

import pytest

from siamese_graph.errors import DataError
from siamese_graph.inference import models
from siamese_graph.model import traindir
from tests.conftest import SYNTHETIC, cli, face


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0, "0.5", True, None])
def test_check_threshold_refuses_what_no_verdict_can_use(bad):
    with pytest.raises(DataError, match="threshold"):
        traindir.check_threshold(bad, "--threshold")


def test_check_threshold_keeps_a_positive_distance():
    assert traindir.check_threshold(0.73, "x") == 0.73
    assert traindir.check_threshold(2, "x") == 2.0


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


def _threshold_commands(model, tmp_path):
    """Each command's argv (without --threshold) on synthetic photos, and a check of what it wrote."""
    people = tmp_path / "people"
    for i, person in enumerate(("p0", "p1")):
        (people / person).mkdir(parents=True)
        for k in range(2):
            face(i + 1, k).save(people / person / ("%d.png" % k))
    a, b = str(people / "p0" / "0.png"), str(people / "p1" / "0.png")
    ckpt = "--checkpoint_dir=%s" % model
    return {
        "score": [*SYNTHETIC, ckpt, a, b],
        "gallery": [*SYNTHETIC, ckpt, "--enroll=%s" % people, "--k=1", "--gallery=%s" % (tmp_path / "g.npz")],
        "export": [ckpt, "--output_dir=%s" % (tmp_path / "x")],
        "evaluate": [*SYNTHETIC, ckpt, "--folder=%s" % people, "--kshot=1", "--episodes=2",
                     "--output_dir=%s" % (tmp_path / "e")],
        "embed": [*SYNTHETIC, ckpt, "--folder=%s" % people, "--output_dir=%s" % (tmp_path / "m")],
    }


@pytest.mark.parametrize("command", ["score", "gallery", "export", "evaluate", "embed"])
def test_nonsense_thresholds_are_refused_by_every_command(trained, tmp_path, command):
    """NaN, infinite, negative and 0 are refused by every command in one line before
    anything is written or printed; a good threshold goes through score, gallery and
    export (the control), and evaluate and embed, which make no verdicts, refuse it."""
    argv = _threshold_commands(trained, tmp_path)[command]
    outputs = [tmp_path / out for out in ("g.npz", "x", "e", "m")]
    for value in ("nan", "inf", "-inf", "-1", "0"):
        r = cli("siamese_graph." + command, *argv, "--threshold=%s" % value)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (command, value, r.stderr[-1500:])
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: flag --threshold=%s" % float(value)), (command, value, last)
        assert "must be a finite" in last, (command, value, last)
        assert not r.stdout.strip() and not any(o.exists() for o in outputs), (command, r.stdout)
    assert not os.path.exists(os.path.join(trained, "threshold.json"))
    r = cli("siamese_graph." + command, *argv, "--threshold=0.5")
    if command in ("evaluate", "embed"):
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last.startswith("error: --threshold=0.5: %s takes no threshold" % command), last
        assert not any(o.exists() for o in outputs)
    else:
        assert r.returncode == 0, (command, r.stderr[-1500:])
        assert any(o.exists() for o in outputs) or "different" in r.stdout or "same" in r.stdout


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
