"""Training end to end on synthetic records: loss falls, checkpoints, resume, signals, bad input."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.conftest import REPO, cli

pytestmark = pytest.mark.slow  # training runs (README: `-m "not slow"` leaves them out)

ARGS = ["--image_size=32", "--batch_size=8", "--log_every_n_steps=5", "--save_checkpoint_steps=10",
        "--save_summaries_steps=5",
        "--validate_every_n_steps=20", "--val_pairs=100", "--shuffle_buffer=64",
        "--lr_schedule=constant", "--learning_rate=3e-3", "--head=euclidean", "--augment"]


def train(records_dir, train_dir, *extra):
    return cli("siamese_graph.train", "--records_dir=%s" % records_dir,
                   "--train_dir=%s" % train_dir, *ARGS, *extra)


def losses(train_dir, tag="loss"):
    """[(step, value)] of a scalar summary, read from the run's TensorBoard events files."""
    out = []
    for name in sorted(os.listdir(train_dir)):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(train_dir, name)):
                out += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return [v for _, v in sorted(out)]


def test_loss_falls_checkpoint_and_saved_flags(synthetic_records, tmp_path):
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=80")
    assert r.returncode == 0, r.stderr[-3000:]
    ls = losses(tmp_path / "run")
    assert len(ls) >= 10
    assert sum(ls[-3:]) / 3 < 0.7 * sum(ls[:3]) / 3, ls
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("model.ckpt-80")
    model = json.load(open(tmp_path / "run" / "model.json"))
    assert model["net"] == "convnet" and model["head"] == "euclidean" and model["image_size"] == 32
    # the code that trained it: the revision, and the files with uncommitted changes (a list)
    assert re.fullmatch(r"[0-9a-f]{40}", model["revision"]) and isinstance(model["dirty"], list)
    assert "--max_steps=80" in open(tmp_path / "run" / "flags.txt").read()
    logged = re.search(r"validation at step 80: AUC ([0-9.]+)", r.stderr)
    assert logged and float(logged.group(1)) == pytest.approx(losses(tmp_path / "run", "validation/auc")[-1],
                                                              abs=1e-4)


def test_all_pairs_loss_falls_on_pairs_from_the_cache(synthetic_records, tmp_path):
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=60", "--loss_pairs=all",
              "--validate_every_n_steps=0", "--cache")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cache: 38 photos decoded once" in r.stderr
    if hasattr(os, "SCHED_IDLE"):  # train's default --input_priority=idle found tf.data's threads
        assert int(re.search(r"input threads at idle CPU priority: (\d+)", r.stderr).group(1)) >= 1
    ls = losses(tmp_path / "run")
    assert len(ls) >= 8
    assert sum(ls[-3:]) / 3 < 0.7 * sum(ls[:3]) / 3, ls


def test_the_identity_loss_trains_and_its_checkpoint_scores_without_the_class_weights(synthetic_records, tmp_path):
    """--identity_loss_weight: the identity loss falls; the checkpoint holds the class
    weights, and a fresh inference graph restores it without them (they are training's)."""
    import numpy as np

    from siamese_graph.inference import models

    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=60", "--validate_every_n_steps=0", "--cache",
              "--loss_pairs=active", "--identity_loss_weight=0.5", "--identity_loss_scale=8",
              "--moving_average_decay=0.9")
    assert r.returncode == 0, r.stderr[-3000:]
    identity = losses(tmp_path / "run", "identity_loss")
    assert len(identity) >= 8 and sum(identity[-3:]) / 3 < 0.8 * sum(identity[:3]) / 3, identity
    names = dict(tf.train.list_variables(str(tmp_path / "run")))
    counts = np.array(synthetic_records[1][:12])  # the train split's people
    assert names["identity_classifier/weights"][1:] == [
                                                        int((counts >= 2).sum())]  # a class each with 2+ photos
    assert not [n for n in names if n.startswith("identity_classifier/") and "ExponentialMovingAverage" in n]
    model = models.Model(str(tmp_path / "run"))  # a fresh graph: towers and head only
    photos = list(np.random.RandomState(0).randint(0, 256, (4, 40, 40, 3)).astype(np.uint8))
    features = model.embed(photos)
    assert features.shape[0] == 4 and np.isfinite(features).all()
    assert np.isfinite(model.distance(features[:2], features[2:])).all()


def test_resume_continues_at_saved_step(synthetic_records, tmp_path):
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=20", "--validate_every_n_steps=0")
    assert r.returncode == 0, r.stderr[-3000:]
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=30", "--validate_every_n_steps=0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "from step 20 to 30" in r.stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("model.ckpt-30")


def test_other_model_in_train_dir_is_refused(synthetic_records, tmp_path):
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=5", "--validate_every_n_steps=0")
    assert r.returncode == 0, r.stderr[-3000:]
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=10", "--head=absdiff")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "holds a checkpoint of another model: head=absdiff (saved: euclidean)" in last
    assert "start fresh" in last and "Traceback" not in r.stderr


@pytest.mark.parametrize("flag,needle", [
    ("--margin=0", "--margin=0: must be > 0"),
    ("--theta=1.5", "(0, 1]"),
    ("--image_size=8", "too small"),
    ("--moving_average_decay=1", "--moving_average_decay=1: must be in [0, 1)"),
])
def test_bad_flags_one_line(synthetic_records, tmp_path, flag, needle):
    extra = [flag] + (["--net=densenet121"] if "theta" in flag else [])
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=5", *extra)
    assert r.returncode == 1
    assert needle in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


def test_missing_records_one_line(tmp_path):
    r = train(tmp_path / "nowhere", tmp_path / "run", "--max_steps=5")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "error: %s: records folder not found" % (tmp_path / "nowhere")


def test_sigterm_saves_and_exits_cleanly(synthetic_records, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "siamese_graph.train",
                             "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % (tmp_path / "run"),
                             *ARGS, "--max_steps=100000", "--save_checkpoint_steps=100000",
                             "--validate_every_n_steps=0"], cwd=REPO, env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    for line in proc.stderr:  # wait until training runs
        if "step 15  loss" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, rest[-3000:]
    assert "saving a checkpoint and stopping" in rest
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "run"))
    assert ckpt and int(ckpt.rsplit("-", 1)[1]) >= 15


@pytest.mark.parametrize("delay", [2.0, 4.0])
def test_sigterm_before_the_first_step_stops_at_once(synthetic_records, tmp_path, delay):
    """Imports, checks, graph building, session start: SIGTERM ends the run promptly in each."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "siamese_graph.train",
                             "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % (tmp_path / "run"),
                             *ARGS, "--max_steps=100000", "--validate_every_n_steps=0"], cwd=REPO, env=env,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert code in (-signal.SIGTERM, 0), code
    assert time.time() - sent < 15


def test_a_nan_flag_is_refused_before_flags_txt(synthetic_records, tmp_path):
    r = train(synthetic_records[0], tmp_path / "run", "--max_steps=5", "--lr_max=nan")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    # the project's one-line form, as the last (and only error) line: not absl's FATAL and help hint
    assert r.stderr.strip().splitlines()[-1] == "error: flag --lr_max=nan: must be a finite number", r.stderr
    assert "FATAL" not in r.stderr and "--helpshort" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_a_second_train_on_one_train_dir_is_refused(synthetic_records, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=REPO)
    first = subprocess.Popen([sys.executable, "-m", "siamese_graph.train", "--records_dir=%s" % synthetic_records[0],
                              "--train_dir=%s" % run, *ARGS, "--max_steps=100000000", "--max_minutes=3"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list(run.glob("events.out.tfevents*")):
            assert first.poll() is None, first.stderr.read()[-2000:]
            time.sleep(0.5)
        r = train(synthetic_records[0], run, "--max_steps=50")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "%s: another train is writing here (pid %d)" % (run, first.pid) in r.stderr.strip().splitlines()[-1]
    finally:
        first.kill()  # kill -9: the kernel drops its lock
        first.wait()
    r = train(synthetic_records[0], run, "--max_steps=3")
    assert "another train is writing" not in r.stderr  # nothing stuck after kill -9


def test_train_never_writes_into_a_folder_it_did_not_write(synthetic_records, tmp_path):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    (run / "checkpoint").write_text("my own file called checkpoint")
    r = train(synthetic_records[0], run, "--max_steps=5")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last == ("error: %s holds files train did not write (checkpoint, notes.txt) and no "
                                          "model.json: choose another folder" % run), last
    assert sorted(os.listdir(run)) == ["checkpoint", "notes.txt"]
    assert (run / "checkpoint").read_text() == "my own file called checkpoint"
    # the control: an empty folder is a fine train_dir
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train(synthetic_records[0], empty, "--max_steps=5").returncode == 0
