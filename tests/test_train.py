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


def fixed_inputs():
    """build_training_graph's inputs= in the current graph: the same 8 random 16x16 pairs
    (4 same, 4 different) on every call."""
    import numpy as np

    rng = np.random.RandomState(0)
    batch = {"image_a": rng.normal(size=(8, 16, 16, 3)).astype("float32"),
             "image_b": rng.normal(size=(8, 16, 16, 3)).astype("float32"),
             "label": np.array([0, 1] * 4, np.int32), "identity_a": np.arange(8),
             "identity_b": np.array([0, 9, 2, 11, 4, 13, 6, 15])}
    return {k: tf.constant(v) for k, v in batch.items()}


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


def test_the_optimizer_initializes_before_the_global_step(synthetic_records):
    """Adam's beta1_power starts from the schedule's beta1, a function of the step.
    Initializers run in parallel (on a cluster, across processes), so it must not need
    global_step to exist yet: it failed with "Could not find variable global_step"."""
    from siamese_graph.data import pairs
    from siamese_graph.training import graphs, train_config

    v1 = tf.compat.v1
    config = train_config.TrainConfig(image_size=16, batch_size=4, beta1_max=0.93)
    with tf.Graph().as_default():
        graph = graphs.build_training_graph([pairs.pairable_split(synthetic_records[0], "train")], config)
        beta1_power = [v for v in v1.global_variables() if "beta1_power" in v.name][0]
        with v1.Session() as sess:
            sess.run(beta1_power.initializer)  # global_step still uninitialized
            assert sess.run(beta1_power) == pytest.approx(0.93)
            sess.run(v1.global_variables_initializer())
            sess.run(graph.train_op)
            assert sess.run(v1.train.get_global_step()) == 1


def test_bfloat16_session_config_keeps_a_cluster_workers_settings(tmp_path):
    from siamese_graph.training import loop, train_config

    v1 = tf.compat.v1
    base = v1.ConfigProto(device_filters=["/job:ps"], operation_timeout_in_ms=5000)
    assert loop.session_config(train_config.TrainConfig(mixed_precision="none"), base) is base
    assert loop.session_config(train_config.TrainConfig(mixed_precision="none")) is None
    out = loop.session_config(train_config.TrainConfig(mixed_precision="bfloat16"), base)
    assert list(out.device_filters) == ["/job:ps"] and out.operation_timeout_in_ms == 5000
    assert out.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 1  # ON
    assert not base.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16
    (tmp_path / "yes").write_text("flags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    (tmp_path / "no").write_text("flags\t\t: fpu avx2 avx512f\n")
    assert loop.native_bf16(str(tmp_path / "yes")) is True
    assert loop.native_bf16(str(tmp_path / "no")) is False
    assert loop.native_bf16(str(tmp_path / "missing")) is None
    # the default, auto: bfloat16 only where the CPU has bfloat16 arithmetic
    assert train_config.TrainConfig().mixed_precision == "auto"
    assert loop.resolved_precision("auto", str(tmp_path / "yes")) == "bfloat16"
    assert loop.resolved_precision("auto", str(tmp_path / "no")) == "none"
    assert loop.resolved_precision("auto", str(tmp_path / "missing")) == "none"
    assert loop.resolved_precision("none", str(tmp_path / "yes")) == "none"
    assert loop.resolved_precision("bfloat16", str(tmp_path / "no")) == "bfloat16"


def test_bfloat16_step_runs_the_convolutions_in_bfloat16_and_keeps_float32_weights():
    """The rewrite casts the step's convolutions to bfloat16 (checked where the CPU has
    bfloat16 arithmetic), not the matmuls of the embedding and the head; the variables stay float32 and the first loss is the float32
    graph's to bfloat16's precision."""
    import numpy as np

    from siamese_graph.training import graphs, loop, train_config

    v1 = tf.compat.v1
    out = {}
    for precision in ("none", "bfloat16"):
        config = train_config.TrainConfig(image_size=16, batch_size=8, loss_pairs="active", mixed_precision=precision)
        with tf.Graph().as_default():
            graph = graphs.build_training_graph([], config, inputs=fixed_inputs())
            assert {v.dtype.base_dtype for v in v1.global_variables()} <= {tf.float32, tf.int64}
            meta = v1.RunMetadata()
            with v1.Session(config=loop.session_config(config)) as sess:
                sess.run(v1.global_variables_initializer())
                first = sess.run(graph.total_loss, options=v1.RunOptions(output_partition_graphs=True),
                                 run_metadata=meta)
                for _ in range(5):
                    _, loss = sess.run([graph.train_op, graph.total_loss])
            bf16 = tf.bfloat16.as_datatype_enum
            bf16_ops = [n.op for g in meta.partition_graphs for n in g.node if n.attr["T"].type == bf16]
            out[precision] = first, loss, bf16_ops
    assert out["none"][2] == []
    if loop.native_bf16():
        assert any("Conv2D" in op for op in out["bfloat16"][2]), "no convolution was rewritten to bfloat16"
        # the embedding and the head stay float32
        assert not any("MatMul" in op for op in out["bfloat16"][2]), out["bfloat16"][2]
    assert np.isfinite(out["bfloat16"][1])
    assert out["bfloat16"][0] == pytest.approx(out["none"][0], rel=0.03)


@pytest.mark.skipif(not (hasattr(os, "SCHED_IDLE") and os.path.isdir("/proc/self/task")),
                    reason="idle input priority is Linux's SCHED_IDLE, read through /proc/self/task")
def test_input_threads_go_to_idle_priority_and_the_batches_do_not_change():
    import threading

    from siamese_graph.training import session_hooks

    v1 = tf.compat.v1

    class Snapshot(v1.train.SessionRunHook):  # the threads and their policies as the session starts
        def after_create_session(self, session, coord):
            self.policies = {t: os.sched_getscheduler(t) for t in session_hooks.thread_ids()}

    def run(priority):
        with tf.Graph().as_default():
            ds = tf.data.Dataset.range(400).map(lambda x: tf.cast(x, tf.float32) ** 2, num_parallel_calls=4)
            batch = v1.data.make_one_shot_iterator(ds.batch(8).prefetch(2)).get_next()
            snap = Snapshot()
            with v1.train.MonitoredSession(hooks=[snap] + ([priority] if priority else [])) as sess:
                out = [sess.run(batch) for _ in range(20)]
                policies = {t: os.sched_getscheduler(t) for t in session_hooks.thread_ids()}
        return out, snap.policies, policies

    hook = session_hooks.InputPriorityHook()
    out, before, during = run(hook)
    assert hook.lowered and not hook.lowered & set(before)  # only threads started after the session
    assert all(during[t] == os.SCHED_IDLE for t in hook.lowered if t in during)
    assert any(t in during for t in hook.lowered)
    assert all(during[t] == before[t] for t in before if t in during)  # the session's own pools keep theirs
    assert during[threading.get_native_id()] != os.SCHED_IDLE
    plain, _, _ = run(None)
    assert all((a == b).all() for a, b in zip(out, plain)) and len(out) == len(plain) == 20


@pytest.mark.parametrize("field,value,needle", [
    ("weight_decay", float("nan"), "--weight_decay=nan: must be a finite number"),
    ("lr_max", float("nan"), "--lr_max=nan: must be a finite number"),
    ("margin", float("nan"), "--margin=nan: must be a finite number"),
    ("gray_prob", float("inf"), "--gray_prob=inf: must be a finite number"),
    ("lr_max", 1e-5, "--lr_max=1e-05: must be at least --lr_min=0.0001"),
    ("learning_rate", -1.0, "--learning_rate=-1: must be > 0"),
    ("beta1_max", 1.0, "--beta1_max=1: must be in [0, 1)"),
    ("image_size", 0, "--image_size=0: must be in 1..512 pixels"),
    ("image_size", -5, "--image_size=-5: must be in 1..512 pixels"),
])
def test_every_training_number_is_checked_before_anything_is_written(field, value, needle):
    from siamese_graph import errors
    from siamese_graph.training import train_config

    with pytest.raises(errors.ArgumentError) as e:
        train_config.TrainConfig(**{field: value}).check()
    assert errors.one_line(e.value) == needle


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
