"""Metrics, pair-list parsing, and restoring a checkpoint to evaluate, score, enroll and embed."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from siamese_graph.data import pair_lists
from siamese_graph.inference import metrics
from tests.conftest import SYNTHETIC, cli, make_people

v1 = tf.compat.v1


# --- metrics ---------------------------------------------------------------------------


# --- pair lists --------------------------------------------------------------------------


# --- restore, evaluate, score, gallery, embed (end to end) ------------------------------


@pytest.fixture(scope="module")
def trained(synthetic_records, tmp_path_factory):
    """A few training steps on synthetic records with the absdiff head (its dense layer
    must be restored too) and moving averages of the weights (restored in their place);
    returns (records_dir, train_dir)."""
    train_dir = str(tmp_path_factory.mktemp("run") / "absdiff")
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % train_dir,
                "--image_size=32", "--batch_size=8", "--max_steps=25", "--head=absdiff",
                "--validate_every_n_steps=0", "--lr_schedule=constant", "--shuffle_buffer=64",
                "--moving_average_decay=0.9")
    assert r.returncode == 0, r.stderr[-3000:]
    return synthetic_records[0], train_dir


def training_graph_distances(records_dir, train_dir, averaged=True):
    """Distances of the first eval pairs computed in a training-style graph, from the
    checkpoint's moving averages (or raw weights): (plain, flip-averaged, names a, names b).
    Flip-averaged: each photo's features are the L2-normalized mean of the tower's
    outputs for the photo and its mirror image."""
    from siamese_graph.data import pairs
    from siamese_graph.model import siamese
    from siamese_graph.model.nets import nets_factory

    with tf.Graph().as_default():
        ds = pairs.pair_dataset(pairs.pairable_split(records_dir, "train"), 8, 32, "celeba", augment=False,
                                seed=1)
        b = v1.data.make_one_shot_iterator(ds).get_next()
        fn = nets_factory.get_network_fn("convnet", 32)
        fa, fb = siamese.towers(b["image_a"], b["image_b"], fn, False)
        dw = siamese.distance(fa, fb, "absdiff", 128)

        def flip_averaged(x):
            mirror = siamese.tower(tf.reverse(x, axis=[2]), fn, False, reuse=True)
            return tf.math.l2_normalize(siamese.tower(x, fn, False, reuse=True) + mirror, axis=1)
        dw_flip = siamese.distance(flip_averaged(b["image_a"]), flip_averaged(b["image_b"]), "absdiff", 128,
                                   reuse=True)
        names = {v.op.name: v for v in v1.global_variables()}
        if averaged:
            trainable = {v.op.name for v in v1.trainable_variables()}
            names = {(n + "/ExponentialMovingAverage" if n in trainable else n): v for n, v in names.items()}
        with v1.Session() as sess:
            v1.train.Saver(names).restore(sess, tf.train.latest_checkpoint(train_dir))
            return sess.run([dw, dw_flip, b["filename_a"], b["filename_b"]])


@pytest.mark.slow
def test_score_agrees_with_training_graph(trained, tmp_path):
    records_dir, train_dir = trained
    dw, dw_flip, fa, fb = training_graph_distances(records_dir, train_dir)
    raw, _, _, _ = training_graph_distances(records_dir, train_dir, averaged=False)
    assert np.abs(raw - dw).max() > 1e-4  # the averages are not the raw weights
    src = os.path.join(os.path.dirname(records_dir), "src", "img_align_celeba")
    with open(tmp_path / "pairs.txt", "w") as f:
        for a, b in zip(fa, fb):
            f.write("%s %s\n" % (a.decode(), b.decode()))
    for flag, want in (("--noflip_average", dw), ("--flip_average", dw_flip)):
        r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir,
                    "--pairs=%s" % (tmp_path / "pairs.txt"), "--image_root=%s" % src, "--format=json", flag)
        assert r.returncode == 0, r.stderr[-3000:]
        got = [p["distance"] for p in json.loads(r.stdout)["pairs"]]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert np.abs(dw_flip - dw).max() > 1e-4
    one = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir,
                  os.path.join(src, fa[0].decode()), os.path.join(src, fb[0].decode()))
    assert one.returncode == 0 and one.stdout.startswith("distance %.4f" % dw_flip[0])


@pytest.mark.slow
def test_evaluate_records_calibrate_then_score_uses_threshold(trained, tmp_path):
    records_dir, train_dir = trained
    out = tmp_path / "eval"
    r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--records_dir=%s" % records_dir,
                "--split=train", "--num_pairs=200", "--calibrate", "--output_dir=%s" % out)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["pairs"] == 200 and report["same_pairs"] == 100 and report["folds"] == 10
    assert report["distinct_photos"] <= 37
    # the report's figures are those of the same pairs scored in this process
    from siamese_graph import evaluate
    from siamese_graph.inference import models
    photos = evaluate.records_photos(records_dir, "train")
    pairs = pair_lists.balanced_from_identities([p[0] for p in photos], [p[1] for p in photos], 200, 0, 10)
    model = models.Model(train_dir)
    d, distinct = model.pair_distances(pairs, {n: e for n, _, e in photos}.get)
    y = [p[2] for p in pairs]
    assert distinct == report["distinct_photos"]
    assert report["auc"] == pytest.approx(metrics.roc_auc(d, y), abs=1e-6)
    assert report["best_accuracy"] == pytest.approx(metrics.best_accuracy(d, y)[0], abs=1e-6)
    assert report["kfold_accuracy_mean"] == pytest.approx(
        metrics.kfold_accuracy(d, y, [p[3] for p in pairs])[0], abs=1e-6)
    assert sorted(os.path.basename(p) for p in report["plots"]) == ["distances.png", "roc.png"]
    from PIL import Image
    assert Image.open(out / "roc.png").size[0] >= 400
    saved = json.load(open(tmp_path / "eval" / "report.json"))
    assert saved["auc"] == report["auc"]
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(out))
    thr = json.load(open(os.path.join(train_dir, "threshold.json")))["threshold"]
    assert thr == report["best_threshold"]
    src = os.path.join(os.path.dirname(records_dir), "src", "img_align_celeba")
    one = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir,
                  os.path.join(src, "000001.jpg"), os.path.join(src, "000002.jpg"))
    assert one.returncode == 0
    d = float(one.stdout.split()[1])
    assert one.stdout.split()[2] == ("same" if d <= thr else "different")
    other = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--noflip_average",
                    os.path.join(src, "000001.jpg"), os.path.join(src, "000002.jpg"))
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "calibrated with flip_average=True" in other.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_kshot_gallery_and_embed_on_a_folder(trained, tmp_path):
    _, train_dir = trained
    people = make_people(tmp_path / "people", 50, 4, 3)
    r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--folder=%s" % people,
                "--kshot=1", "--nway=3", "--episodes=20")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["identities"] == 4 and rep["chance"] == pytest.approx(1 / 3) and rep["episodes"] == 20
    # each episode classifies 3 queries: the mean is a whole number of sixtieths
    assert rep["accuracy_mean"] * 60 == pytest.approx(round(rep["accuracy_mean"] * 60), abs=1e-6)
    g = tmp_path / "g.npz"
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--enroll=%s" % people,
                "--k=2", "--gallery=%s" % g, "--threshold=1e9", str(people / "p2" / "2.png"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.splitlines()[0]) == {"gallery": str(g), "people": 4, "photos": 8, "no_face": []}
    line = r.stdout.splitlines()[1].split("\t")
    assert line[1] in {"p0", "p1", "p2", "p3"}
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--gallery=%s" % g,
                "--threshold=1e-9", str(people / "p2" / "2.png"))
    assert r.returncode == 0 and r.stdout.split("\t")[1] == "unknown"
    r = cli("siamese_graph.embed", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--folder=%s" % people,
                "--output_dir=%s" % (tmp_path / "emb"))
    assert r.returncode == 0, r.stderr[-3000:]
    emb = np.load(tmp_path / "emb" / "embeddings.npy")
    assert emb.shape == (12, 256)  # convnet at 32x32: (32/16)^2 * 64
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-4)
    meta = (tmp_path / "emb" / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "person\tfile" and len(meta) == 13 and meta[1].startswith("p0\t")


@pytest.mark.slow
def test_bad_inputs_one_line(trained, tmp_path):
    records_dir, train_dir = trained
    cases = [
        (["--checkpoint_dir=%s" % tmp_path, "--records_dir=%s" % records_dir], "no checkpoint in this folder"),
        (["--checkpoint_dir=%s" % train_dir, "--pairs=%s" % (tmp_path / "none.txt")], "pairs file not found"),
    ]
    for args, needle in cases:
        r = cli("siamese_graph.evaluate", *SYNTHETIC, *args)
        assert r.returncode == 1 and needle in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    (tmp_path / "notaphoto.jpg").write_text("hello")
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, str(tmp_path / "notaphoto.jpg"),
                str(tmp_path / "notaphoto.jpg"))
    assert r.returncode == 1 and "notaphoto.jpg: unusable photo (not an image)" in r.stderr.strip().splitlines()[-1]
    (tmp_path / "p.txt").write_text("only_one_path\n")
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--pairs=%s" % (tmp_path / "p.txt"))
    assert r.returncode == 1 and "p.txt:1: expected 'path_a path_b'" in r.stderr.strip().splitlines()[-1]
    # a checkpoint whose variables do not match its model.json
    bad = tmp_path / "bad_run"
    bad.mkdir()
    for n in os.listdir(train_dir):
        if n.startswith(("model.ckpt", "checkpoint")):
            os.symlink(os.path.join(train_dir, n), bad / n)
    cfg = json.load(open(os.path.join(train_dir, "model.json")))
    cfg["net"] = "densenet121"
    (bad / "model.json").write_text(json.dumps(cfg))
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % bad, str(tmp_path / "notaphoto.jpg"),
                str(tmp_path / "notaphoto.jpg"))
    assert r.returncode == 1 and "checkpoint variables do not match model.json" in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_gallery_of_another_checkpoint_and_other_bad_scoring_inputs(trained, tmp_path):
    records_dir, train_dir = trained
    people = make_people(tmp_path / "people", 60, 2, 2)
    g = tmp_path / "g.npz"
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--enroll=%s" % people,
                "--gallery=%s" % g)
    assert r.returncode == 0, r.stderr[-2000:]
    other = str(tmp_path / "other")
    shutil.copytree(train_dir, other)
    r = cli("siamese_graph.train", "--records_dir=%s" % records_dir, "--train_dir=%s" % other,
                "--image_size=32", "--batch_size=8", "--max_steps=27", "--head=absdiff",
                "--validate_every_n_steps=0", "--lr_schedule=constant", "--shuffle_buffer=64",
                "--moving_average_decay=0.9")
    assert r.returncode == 0, r.stderr[-2000:]
    probe = str(people / "p0" / "0.png")
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % other, "--gallery=%s" % g, probe)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "enrolled with another checkpoint" in r.stderr.strip().splitlines()[-1]
    ok = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--gallery=%s" % g, probe)
    assert ok.returncode == 0 and ok.stdout.split("\t")[2] == "nearest p0", ok.stdout
    # a decompression bomb at scoring time is refused by name, as make_records skips it
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 10000)).save(bomb)
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, probe, str(bomb))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "bomb.png: unusable photo (over Pillow's decompression-bomb limit" in r.stderr.strip().splitlines()[-1]
    for n in ("0", "-4", "2"):
        r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--records_dir=%s" % records_dir,
                    "--split=train", "--num_pairs=" + n)
        assert r.returncode == 1 and "needs at least 2 x --folds (20)" in r.stderr.strip().splitlines()[-1]
    (tmp_path / "same.txt").write_text("%s %s 0\n%s %s 0\n" % (probe, probe, probe, probe))
    r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--pairs=%s" % (tmp_path / "same.txt"),
                "--output_dir=%s" % (tmp_path / "e"))
    assert r.returncode == 1 and "2 same and 0 different pairs" in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_degrade_equals_evaluating_converted_photos(trained, tmp_path):
    """--degrade=grayscale on a pair list gives the report of the same list made of
    grayscale copies of the photos; a bad spec is one line."""
    from PIL import Image

    _, train_dir = trained
    people = make_people(tmp_path / "people", 70, 4, 3)
    gray = tmp_path / "gray"
    lines_a, lines_b = [], []
    for i, (a, b, y) in enumerate([("p0/0", "p0/1", 0), ("p1/0", "p1/2", 0), ("p2/1", "p2/2", 0), ("p3/0", "p3/1", 0),
                                   ("p0/0", "p1/1", 1), ("p1/0", "p2/1", 1), ("p2/0", "p3/2", 1), ("p3/0", "p0/2", 1)]):
        for name in (a, b):
            (gray / name).parent.mkdir(parents=True, exist_ok=True)
            Image.open(people / (name + ".png")).convert("L").convert("RGB").save(gray / (name + ".png"))
        lines_a.append("%s %s %d %d\n" % (people / (a + ".png"), people / (b + ".png"), y, i % 2))
        lines_b.append("%s %s %d %d\n" % (gray / (a + ".png"), gray / (b + ".png"), y, i % 2))
    (tmp_path / "a.txt").write_text("".join(lines_a))
    (tmp_path / "b.txt").write_text("".join(lines_b))
    reports = []
    for pairs, extra in (("a.txt", ["--degrade=grayscale"]), ("b.txt", [])):
        r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--pairs=%s" % (tmp_path / pairs),
                    "--output_dir=%s" % (tmp_path / ("out-" + pairs)), *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        reports.append(json.loads(r.stdout))
    assert reports[0]["source"].endswith("degraded grayscale")
    for key in ("auc", "best_accuracy", "best_threshold", "eer"):
        assert reports[0][key] == pytest.approx(reports[1][key], abs=1e-6), key
    r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % train_dir, "--pairs=%s" % (tmp_path / "a.txt"),
                "--degrade=sepia")
    assert r.returncode == 1 and "--degrade=sepia: expected grayscale" in r.stderr.strip().splitlines()[-1]


def test_kshot_must_be_at_least_one(tiny_model, tmp_path):
    people = make_people(tmp_path / "people", 0, 3, 3)
    for k in ("0", "-2"):
        r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % tiny_model, "--folder=%s" % people,
                "--kshot=%s" % k)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last.startswith("error: --kshot=%s: must be at least 1" % k), last
    # the control: without --kshot, --folder gives verification pairs of its photo files
    r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % tiny_model, "--folder=%s" % people,
            "--num_pairs=8", "--folds=2", "--align=none", "--min_face_probability=0",
            "--output_dir=%s" % (tmp_path / "ev"))
    assert r.returncode == 0, r.stderr[-1500:]
    report = json.loads(r.stdout)
    assert report["pairs"] == 8 and report["same_pairs"] == 4 and report["source"] == str(people)
    scored = (tmp_path / "ev" / "pairs.tsv").read_text().splitlines()
    assert len(scored) == 8 and all(line.startswith(str(people)) for line in scored)
