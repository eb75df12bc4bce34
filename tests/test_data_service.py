"""The pair graph on a tf.data service (dispatcher + 2 workers on 127.0.0.1)."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from siamese_graph import netns
from siamese_graph.data import records
from siamese_graph.training import cluster, graphs, train_config
from tests.conftest import REPO, cli

v1 = tf.compat.v1


@pytest.fixture
def service():
    """A dispatcher and 2 workers, one process each, on 127.0.0.1 free ports; all reaped."""
    ports = cluster.free_ports(3)
    workers = ["127.0.0.1:%d" % p for p in ports[1:]]
    base = [sys.executable, "-m", "siamese_graph.data_service", "--parent_pid=%d" % os.getpid(),
            "--listen_on_every_interface"]
    cmds = [base + ["--role=dispatcher", "--port=%d" % ports[0], "--worker_addresses=%s" % ",".join(workers)]]
    cmds += [base + ["--role=worker", "--port=%d" % ports[1 + i], "--dispatcher=127.0.0.1:%d" % ports[0],
                     "--worker_address=%s" % w] for i, w in enumerate(workers)]
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for c in cmds]
    try:
        deadline = time.time() + 120
        for port, what in zip(ports, ("the dispatcher", "worker 0", "worker 1")):  # all three serving
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.time() < deadline, "%s did not start" % what
                    time.sleep(0.2)
        yield "grpc://127.0.0.1:%d" % ports[0], procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_each_worker_makes_pairs_from_its_own_shards(six_shard_records, service):
    """Works from a tf.compat.v1 graph; with ShardingPolicy.HINT worker i reads shards
    i, i+2, i+4: every batch comes from one worker's shards, and both workers send batches."""
    address, procs = service
    split = records.RecordSet(six_shard_records).split("train")
    shard_of = {identity: k for k, shard in enumerate(s for s in split.shards if s["records"])
                for identity, _ in shard["identities"]}
    config = train_config.TrainConfig(batch_size=8, image_size=32, shuffle_buffer=64)
    with tf.Graph().as_default():
        batch = graphs.build_inputs([split], config, data_service=(address, "test-job"))
        with v1.Session() as sess:
            parities = []
            deadline = time.time() + 60
            # until both workers have sent batches: a worker that registers after the job
            # starts gets its task later, and the client learns of it at its next heartbeat
            while len(set(parities)) < 2 or len(parities) < 30:
                assert time.time() < deadline, "only one worker's batches in 60 s: %s" % parities[:10]
                time.sleep(0.05)
                b = sess.run(batch)
                assert list(b["label"]) == [0, 1] * 4  # balanced, as in-process
                shards = {shard_of[int(i)] for i in np.concatenate([b["identity_a"], b["identity_b"]])}
                assert len({k % 2 for k in shards}) == 1, shards  # one worker's shards only
                parities.append(next(iter(shards)) % 2)
    assert set(parities) == {0, 1}, parities
    assert all(p.poll() is None for p in procs)  # servers keep serving until stopped


def test_with_the_cache_each_worker_makes_its_own_epochs(six_shard_records, service):
    """--cache through the service: each worker caches the whole split and is dealt
    other epoch seeds, so the two workers never send the same batches."""
    address, procs = service
    split = records.RecordSet(six_shard_records).split("train")
    config = train_config.TrainConfig(batch_size=8, image_size=32, augment=True, cache=True)
    # each worker's CPU use while it has no task: the idle control, measured once the
    # workers have settled (a worker still starting TensorFlow is busy on its own)
    deadline = time.time() + 90
    while True:
        before = [cpu_seconds(p.pid) for p in procs[1:]]
        time.sleep(2)
        idle = [cpu_seconds(p.pid) for p in procs[1:]]
        idle_rate = max((i - b) / 2 for i, b in zip(idle, before))
        if idle_rate < 0.05 or time.time() > deadline:
            break
    start = time.time()
    with tf.Graph().as_default():
        batch = graphs.build_inputs([split], config, data_service=(address, "cache-job"))
        with v1.Session() as sess:
            seen = []
            for _ in range(200):
                time.sleep(0.05)
                b = sess.run(batch)
                assert list(b["label"]) == [0, 1] * 4
                seen.append(tuple(b["filename_a"]) + tuple(b["filename_b"]))
    # Both workers took part: each decoded the whole split into its cache and made
    # pairs (0.4 to 0.5 CPU seconds each in runs here), well above what a worker with
    # no task spends in the same time (the idle rate measured above: 0.0 to 0.19 s
    # over the job). 0.15 s above idle is the margin. Without this, one worker alone
    # would pass the check below.
    at_idle = idle_rate * (time.time() - start)
    worked = [cpu_seconds(p.pid) - i for p, i in zip(procs[1:], idle)]
    assert min(worked) > at_idle + 0.15, "a worker did no work: CPU seconds %s, idle %.3f" % (worked, at_idle)
    # two workers on one seed would send every batch twice
    assert len(set(seen)) == len(seen)


def test_the_teachers_rows_travel_with_the_pairs(six_shard_records, service):
    """--distill_from through the service: the teacher's table is a constant of the
    dataset graph the workers run. Here it is as large as the default run's (36,000
    rows of 128 floats, 18 MB, beside the split's own photos' rows), and every photo
    of a batch still gets its own row."""
    from siamese_graph.training import teacher

    address, _ = service
    split = records.RecordSet(six_shard_records).split("train")
    with tf.Graph().as_default(), v1.Session() as sess:
        names = [tf.train.Example.FromString(r).features.feature["image/filename"].bytes_list.value[0]
                 for f in split.files for r in tf.compat.v1.io.tf_record_iterator(f)]
        own = sess.run(teacher.fingerprint(tf.constant(names)))
    rng = np.random.RandomState(0)
    keys = np.concatenate([own, rng.randint(-2 ** 62, 2 ** 62, 36000, dtype=np.int64)])
    order = np.argsort(keys)
    rows = rng.normal(size=(len(keys), 128)).astype(np.float32)
    table = keys[order], rows[order]
    config = train_config.TrainConfig(batch_size=8, image_size=32, distill_from="convnet-celeba")
    with tf.Graph().as_default():
        batch = graphs.build_inputs([split], config, data_service=(address, "distill-job"), teachers=[table])
        with v1.Session() as sess:
            for _ in range(5):
                b = sess.run(batch)
                for side in "ab":
                    fp = sess.run(teacher.fingerprint(b["filename_" + side]))
                    want = table[1][np.searchsorted(table[0], fp)]
                    assert b["known_" + side].all()
                    np.testing.assert_array_equal(b["teacher_" + side], want)


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_train_from_a_local_service_then_every_process_ends(six_shard_records, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=REPO)
    if netns.can_unshare():  # no network namespace on this machine: the launcher's documented override
        env[netns.ALLOW_ALL_ENV] = "1"
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "bin", "train_data_service"), "2",
                             "--records_dir=%s" % six_shard_records, "--train_dir=%s" % run, "--image_size=32",
                             "--batch_size=8", "--max_steps=60", "--validate_every_n_steps=0",
                             "--shuffle_buffer=64", "--log_every_n_steps=20"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    assert "tf.data service on 127.0.0.1:" in out and "step 40  loss" in out
    assert "input threads at idle CPU priority" not in out  # the threads that start here are gRPC's
    ckpt = tf.train.latest_checkpoint(str(run))
    assert tf.train.load_checkpoint(ckpt).get_tensor("global_step") == 60
    assert sorted(os.listdir(run / "logs")) == ["data_service_dispatcher.log", "data_service_worker0.log",
                                                "data_service_worker1.log"]
    mine = "--parent_pid=%d" % proc.pid
    left = [d for d in os.listdir("/proc") if d.isdigit() and mine in _cmdline(d)]
    assert not left, left


def _cmdline(pid):
    try:
        return open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_unreachable_service_is_one_line(six_shard_records, tmp_path):
    port = cluster.free_ports(1)[0]
    r = cli("siamese_graph.train", "--records_dir=%s" % six_shard_records, "--train_dir=%s" % (tmp_path / "r"),
                "--data_service=grpc://127.0.0.1:%d" % port)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "no tf.data service dispatcher answers there" in r.stderr.strip().splitlines()[-1]
    r = cli("siamese_graph.train", "--records_dir=%s" % six_shard_records, "--train_dir=%s" % (tmp_path / "r"),
                "--data_service=127.0.0.1:%d" % port)
    assert "expected grpc://HOST:PORT" in r.stderr.strip().splitlines()[-1]


def test_a_worker_without_its_dispatcher_stops_on_sigterm(tmp_path):
    """The bounded wait is checked in-process below; SIGTERM needs a process."""
    ports = cluster.free_ports(2)
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "siamese_graph.data_service", "--listen_on_every_interface", "--role=worker",
           "--port=%d" % ports[0], "--dispatcher=127.0.0.1:%d" % ports[1]]
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(120, p.kill)  # bounded: TensorFlow's import takes 5 to 30 s on these machines
    killer.start()
    try:
        # past TensorFlow's import and the signal handlers: the worker says it is waiting
        waiting = any("waiting for the dispatcher" in line for line in iter(p.stderr.readline, ""))
        killer.cancel()
        assert waiting and p.poll() is None, "the worker never said it was waiting for its dispatcher"
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)  # the old worker ignored SIGTERM and retried forever
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0


def test_train_refuses_a_server_that_is_not_a_dispatcher_before_writing(six_shard_records, tmp_path):
    port = cluster.free_ports(1)[0]
    spec = tf.train.ClusterSpec({"other": ["127.0.0.1:%d" % port]})
    server = tf.distribute.Server(spec, job_name="other", task_index=0)  # gRPC, but not a dispatcher
    assert server.target
    r = cli("siamese_graph.train", "--records_dir=%s" % six_shard_records, "--train_dir=%s" % (tmp_path / "r"),
            "--data_service=grpc://127.0.0.1:%d" % port)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "not a tf.data service dispatcher" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()  # nothing written (no model.ckpt-0)


def test_a_server_starts_only_when_told_it_listens_on_every_interface():
    """TensorFlow's servers bind every interface with no authentication: the command
    refuses to start one unless --listen_on_every_interface says the user knows
    (bin/train_data_service passes it to the servers of its loopback-only namespace);
    with it, a worker waits a bounded time for its dispatcher."""
    port = cluster.free_ports(1)[0]
    r = cli("siamese_graph.data_service", "--role=worker", "--port=%d" % port, "--dispatcher=127.0.0.1:1")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("error: a tf.data service server listens on every network interface")
    assert "--listen_on_every_interface" in last and "bin/train_data_service" in last
    # the control: with the flag it goes on to wait for its dispatcher (and gives up, bounded)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        r = cli("siamese_graph.data_service", "--role=worker", "--port=%d" % port, "--dispatcher=127.0.0.1:1",
                "--listen_on_every_interface", "--dispatcher_wait_seconds=0.5")
    finally:  # the command's own stop handlers, not this test process's
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert r.returncode == 1 and "no tf.data service dispatcher answered within 0.5 s" in r.stderr.strip().splitlines()[-1]
