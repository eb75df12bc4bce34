"""An exported SavedModel restored with models.Model's interface (inference/exported.py):
the same features, distances and verdicts as the checkpoint it was exported from,
through the API and the commands; refused where it cannot serve what is asked."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from siamese_graph import api
from siamese_graph.errors import DataError
from siamese_graph.inference import exported, models
from tests.conftest import cli, real


@pytest.fixture(scope="module")
def export_dir(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "siamese"
    r = cli("siamese_graph.export", "--checkpoint_dir=%s" % tiny_model, "--output_dir=%s" % out,
            "--threshold=0.1", "--version=1")
    assert r.returncode == 0, r.stderr[-2000:]
    # a second version (the output folder means the highest): the same graph, another threshold
    shutil.copytree(out / "1", out / "3")
    meta = out / "3" / "assets.extra" / "siamese.json"
    meta.write_text(json.dumps(dict(json.loads(meta.read_text()), threshold=0.3)))
    return str(out)


def test_an_export_embeds_and_compares_as_its_checkpoint(tiny_model, export_dir, face_photos):
    saved = api.load_model(export_dir)
    assert isinstance(saved, exported.ExportedModel) and saved.path.endswith(os.sep + "3")
    assert saved.threshold() == pytest.approx(0.3)
    model = models.Model(tiny_model)
    faces = [np.asarray(Image.open(p).convert("RGB")) for p in real(face_photos, aligned=True)]
    faces.append(None)  # a photo without a face: a NaN row, probability 0
    want, want_probs = model.embed(faces, with_faces=True)
    got, got_probs = saved.embed(faces, with_faces=True)
    assert np.isnan(got[-1]).all() and got_probs[-1] == 0
    assert np.abs(got[:-1] - want[:-1]).max() < 1e-4
    assert np.abs(got_probs - want_probs).max() < 1e-4
    assert saved.feature_dim == model.feature_dim and saved.weights_id == model.weights_id
    d_want = model.distance(want[:2], want[2:4])
    assert np.abs(saved.distance(got[:2], got[2:4]) - d_want).max() < 1e-4
    assert not np.allclose(d_want[0], d_want[1])  # the control: the pairs differ
    # JPEG bytes (records, evaluate --degrade) are decoded as the checkpoint's model decodes them
    jpeg = open(real(face_photos)[0], "rb").read()
    assert np.array_equal(saved.decode(jpeg), model.decode(jpeg))
    with pytest.raises(DataError, match="unreadable JPEG"):
        saved.decode(b"not a jpeg")


def test_the_api_and_score_on_an_export_give_the_checkpoints_answers(tiny_model, export_dir, face_photos, tmp_path):
    a, b = real(face_photos)[:2]
    version = os.path.join(export_dir, "1")
    d_saved = api.distance(a, b, api.load_model(version))
    d_ckpt = api.distance(a, b, api.load_model(tiny_model))
    assert np.isfinite(d_ckpt) and abs(d_saved - d_ckpt) < 1e-4
    assert api.verify(a, face_photos["black"], api.load_model(version)) == "no_face"
    (tmp_path / "pairs.txt").write_text("%s\t%s\n%s\t%s\n" % (a, b, a, face_photos["black"]))
    r = cli("siamese_graph.score", "--checkpoint_dir=%s" % version, "--format=json",
            "--pairs=%s" % (tmp_path / "pairs.txt"))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["pairs"]
    assert abs(rows[0]["distance"] - d_ckpt) < 1e-4
    assert rows[0]["verdict"] == ("same" if d_ckpt <= 0.1 else "different")  # version 1's threshold: 0.1
    assert rows[1]["verdict"] == "no_face"


def test_evaluate_on_an_export_reports_the_checkpoints_auc(tiny_model, export_dir, synthetic_records, tmp_path):
    aucs = []
    for where, out in ((tiny_model, "ckpt"), (export_dir, "saved")):
        r = cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % where, "--records_dir=%s" % synthetic_records[0],
                "--split=train", "--num_pairs=40", "--folds=2", "--output_dir=%s" % (tmp_path / out))
        assert r.returncode == 0, r.stderr[-2000:]
        aucs.append(json.loads(r.stdout)["auc"])
    assert abs(aucs[0] - aucs[1]) < 1e-3
    # an export's threshold is inside its graph, and its folder is what TF Serving loads
    r = cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % export_dir, "--records_dir=%s" % synthetic_records[0],
            "--split=train", "--num_pairs=40", "--folds=2", "--output_dir=%s" % (tmp_path / "c"), "--calibrate")
    assert r.returncode == 1 and "--calibrate" in r.stderr.strip().splitlines()[-1]
    r = cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % export_dir, "--records_dir=%s" % synthetic_records[0],
            "--split=train", "--num_pairs=40", "--folds=2")
    assert r.returncode == 1 and "--output_dir" in r.stderr.strip().splitlines()[-1]


def test_what_an_export_cannot_serve_is_refused_by_name(export_dir, tmp_path):
    with pytest.raises(DataError, match="no SavedModel there"):
        exported.ExportedModel(str(tmp_path))
    with pytest.raises(DataError, match="crop"):
        api.load_model(export_dir, crop="none")
    with pytest.raises(DataError, match="flip_average"):
        api.load_model(export_dir, flip_average=False)
    with pytest.raises(DataError, match="checkpoint_path"):
        api.load_model(export_dir, checkpoint_path="model.ckpt-5")
    r = cli("siamese_graph.export", "--checkpoint_dir=%s" % export_dir, "--output_dir=%s" % (tmp_path / "again"),
            "--threshold=1")
    assert r.returncode == 1 and "already an exported SavedModel" in r.stderr.strip().splitlines()[-1]
    old = tmp_path / "old"
    shutil.copytree(os.path.join(export_dir, "1"), old)
    os.remove(old / "assets.extra" / "siamese.json")
    with pytest.raises(DataError, match="not written by siamese-export"):
        api.load_model(str(old))
