"""Parameter-server training on 127.0.0.1: the cluster spec, and 1 ps + 2 workers end to end."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from siamese_graph import netns
from siamese_graph.errors import ArgumentError, DataError
from siamese_graph.training import cluster
from tests.conftest import REPO, SYNTHETIC, cli, face

# With the README's `-n 2 --dist loadgroup`, this file's tests run one at a time in one
# worker: two clusters of three processes each would share 2 cores.
pytestmark = pytest.mark.xdist_group("cluster")

# --- the cluster from flags or TF_CONFIG --------------------------------------------------

PS, WORKERS = "127.0.0.1:2220", "127.0.0.1:2221,127.0.0.1:2222"


def test_cluster_from_flags_and_tf_config_agree():
    flags = cluster.resolve(PS, WORKERS, "worker", 1, None)
    assert flags.ps_hosts == [PS] and flags.num_workers == 2 and not flags.is_chief
    env = json.dumps({"cluster": {"ps": [PS], "worker": WORKERS.split(",")}, "task": {"type": "worker", "index": 1}})
    assert cluster.resolve(None, None, None, 0, env) == flags
    assert cluster.resolve(PS, WORKERS, "worker", 1, env) == flags  # both, agreeing
    # TF_CONFIG's separate "chief" is worker 0 here
    chief_env = json.dumps({"cluster": {"ps": [PS], "chief": ["127.0.0.1:2221"], "worker": ["127.0.0.1:2222"]},
                            "task": {"type": "chief", "index": 0}})
    assert cluster.resolve(None, None, None, 0, chief_env) == cluster.resolve(PS, WORKERS, "worker", 0, None)
    assert cluster.resolve(None, None, None, 0, None) is None  # one machine


@pytest.mark.parametrize("args, needle", [
    ((PS, WORKERS, "worker", 2, None), "task_index=2: out of range: the cluster has 2 worker tasks"),
    ((PS, WORKERS, "ps", 1, None), "task_index=1: out of range: the cluster has 1 ps task"),
    ((PS, "", "worker", 0, None), "a cluster needs --ps_hosts, --worker_hosts and --job_name together"),
    ((PS, "127.0.0.1:x", "worker", 0, None), "expected host:port"),
    ((PS, PS, "worker", 0, None), "shares a host:port with a parameter server"),
    ((PS, WORKERS, "worker", 0, json.dumps({"cluster": {"ps": [PS], "worker": ["127.0.0.1:9"]},
                                           "task": {"type": "worker", "index": 0}})), "disagrees with"),
    ((None, None, None, 0, '{"cluster": '), "not a cluster and task in JSON"),
    ((None, None, None, 0, json.dumps({"cluster": {"ps": [PS]}, "task": {"type": "ps", "index": 0}})),
     "the cluster has no worker"),
    # a TF_CONFIG that is set is never ignored: a list, a task alone, an empty cluster
    ((None, None, None, 0, "[]"), "TF_CONFIG=[]: not a cluster and task in JSON"),
    ((None, None, None, 0, json.dumps({"task": {"type": "worker", "index": 0}})), "not a cluster and task in JSON"),
    ((None, None, None, 0, json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}})),
     "the cluster has no parameter server"),
])
def test_inconsistent_clusters_are_refused(args, needle):
    with pytest.raises(ArgumentError, match=re.escape(needle)) as e:
        cluster.resolve(*args)
    if args[4] and not args[0]:  # from TF_CONFIG alone: the error names TF_CONFIG, no flag
        assert e.value.name == "TF_CONFIG" and "--" not in e.value.message, e.value


def test_free_ports_are_distinct_loopback_ports():
    ports = cluster.free_ports(4)
    assert len(set(ports)) == 4 and all(1024 < p < 65536 for p in ports)
    args = cluster.local_cluster_args(1, 2)
    assert all("--ps_hosts=127.0.0.1:" in a[0] for a in args.values())
    assert sorted(args) == [("ps", 0), ("worker", 0), ("worker", 1)]


def test_a_parameter_server_waits_for_live_workers_and_gives_up_silent_ones():
    # {worker: since when its server refuses connections, None while it accepts them}
    chief_done, grace, cap = 100.0, 5.0, 50.0
    assert cluster.stop_waiting(120.0, chief_done, {1: None}, grace, cap) is None  # alive: finishing
    assert cluster.stop_waiting(103.0, chief_done, {1: 101.0}, grace, cap) is None  # closed 2 s: not yet
    assert "refused connections for 5 s" in cluster.stop_waiting(107.0, chief_done, {1: 101.0}, grace, cap)
    # every silent worker must be gone; one live one keeps the wait
    assert cluster.stop_waiting(107.0, chief_done, {1: 101.0, 2: None}, grace, cap) is None
    assert "still accept connections" in cluster.stop_waiting(151.0, chief_done, {1: None}, grace, cap)


def test_listening_tells_an_open_port_from_a_closed_one():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        host = "127.0.0.1:%d" % s.getsockname()[1]
        assert cluster.listening(host, timeout=1.0)
    assert not cluster.listening(host, timeout=1.0)


# A cluster task that only starts its server, stays quiet for a while, then reports done.
QUIET_WORKER = """
import sys, time
import tensorflow as tf
from siamese_graph.training import cluster
conf = cluster.resolve(sys.argv[1], sys.argv[2], "worker", int(sys.argv[3]), None)
srv = cluster.server(conf)
with tf.Graph().as_default():
    ops = cluster.signal_done_ops(conf)
    time.sleep(float(sys.argv[4]))
    cluster.signal_done(srv.target, ops, conf)
print("reported", flush=True)
"""


@pytest.mark.slow
def test_a_parameter_server_outwaits_a_worker_that_reports_long_after_the_chief(tmp_path):
    # The chief reports at once; worker 1 stays quiet 4 times --ps_grace_seconds (as
    # a worker slow to close its session on a loaded machine does), then reports.
    ports = cluster.free_ports(3)
    ps, workers = "127.0.0.1:%d" % ports[0], "127.0.0.1:%d,127.0.0.1:%d" % tuple(ports[1:])
    env = dict(os.environ, PYTHONPATH=REPO)
    tasks = {"ps0": ["-m", "siamese_graph.train", "--ps_hosts=" + ps, "--worker_hosts=" + workers,
                     "--job_name=ps", "--task_index=0", "--ps_grace_seconds=2"],
             "worker0": ["-c", QUIET_WORKER, ps, workers, "0", "0"],
             "worker1": ["-c", QUIET_WORKER, ps, workers, "1", "8"]}
    procs = {}
    try:
        for name, args in tasks.items():
            with open(tmp_path / (name + ".log"), "w") as log:  # the child keeps its own descriptor
                procs[name] = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=log,
                                               stderr=subprocess.STDOUT)
        codes = [p.wait(timeout=120) for p in procs.values()]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    text = open(tmp_path / "ps0.log").read()
    assert codes == [0, 0, 0], (codes, text[-2000:])
    assert "worker 0 done (1 of 2)" in text and "parameter server 0: workers done: [0, 1]" in text, text[-2000:]
    assert all("reported" in open(tmp_path / (w + ".log")).read() for w in ("worker0", "worker1"))


# --- 1 ps + 2 workers on 127.0.0.1 ----------------------------------------------------------

ARGS = ["--image_size=32", "--batch_size=8", "--validate_every_n_steps=0", "--shuffle_buffer=64",
        "--log_every_n_steps=20", "--save_checkpoint_steps=100", "--ps_grace_seconds=5"]


NO_NAMESPACE = netns.can_unshare()


def launch(train_dir, workers, *extra, timeout=420):
    """bin/train_cluster in a subprocess; returns it (not yet waited for)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    if NO_NAMESPACE:  # a machine where no network namespace can be made: the launcher's documented override
        env[netns.ALLOW_ALL_ENV] = "1"
    return subprocess.Popen([sys.executable, os.path.join(REPO, "bin", "train_cluster"), str(workers),
                             "--train_dir=%s" % train_dir, *ARGS, *extra], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=420):
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out


def task_logs(train_dir, tail=15):
    """The last lines of every task's log, for a failure message."""
    out = []
    for name in sorted(os.listdir(os.path.join(train_dir, "logs"))):
        if name.endswith(".log"):
            lines = open(os.path.join(train_dir, "logs", name)).read().strip().splitlines()
            out.append("--- %s\n%s" % (name, "\n".join(lines[-tail:])))
    return "\n".join(out)


def wait_until(proc, train_dir, condition, what, seconds):
    """Waits for condition() while the cluster runs; fails with every task's log if the
    cluster ends first or the time runs out."""
    deadline = time.time() + seconds
    while not condition():
        if proc.poll() is not None or time.time() > deadline:
            if proc.poll() is None:
                proc.terminate()  # the launcher passes it on to every task
            out = finish(proc, timeout=90)
            pytest.fail("%s: not within %d s (launcher: %s)\n%s" % (what, seconds, out[-1500:],
                                                                   task_logs(train_dir)))
        time.sleep(0.2)


def steps_ran(train_dir):
    """{worker index: its share of the global steps}, from the workers' logs."""
    out = {}
    for i in range(2):
        text = open(os.path.join(train_dir, "logs", "worker%d.log" % i)).read()
        found = re.findall(r"worker %d ran (\d+) of the global steps" % i, text)
        out[i] = int(found[-1]) if found else None
    return out


def assert_no_process_left(train_dir):
    for name, pid in json.load(open(os.path.join(train_dir, "logs", "pids.json"))).items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def logged_steps(train_dir, worker):
    """The global steps a worker's log reports a loss at (empty until it has trained)."""
    path = os.path.join(train_dir, "logs", "worker%d.log" % worker)
    return [int(n) for n in re.findall(r"step (\d+)  loss", open(path).read())] if os.path.exists(path) else []


def global_step(train_dir):
    return int(tf.train.load_checkpoint(tf.train.latest_checkpoint(train_dir)).get_tensor("global_step"))


@pytest.mark.slow
def test_async_cluster_trains_and_restores_like_one_machine(six_shard_records, tmp_path):
    run = str(tmp_path / "run")
    # long enough that worker 1, starting a few seconds after the chief on a loaded
    # machine, still joins the run
    out = finish(launch(run, 2, "--records_dir=%s" % six_shard_records, "--max_steps=1000"))
    assert "exit codes: ps0 0, worker0 0, worker1 0" in out, out[-3000:]
    assert global_step(run) >= 1000
    ran = steps_ran(run)
    assert ran[0] > 0 and ran[1] > 0 and ran[0] + ran[1] >= 1000, ran
    assert "parameter server 0: workers done: [0, 1]" in open(os.path.join(run, "logs", "ps0.log")).read()
    assert_no_process_left(run)
    # the checkpoint restores for score exactly as a single-machine one
    for i in (1, 2):
        face(i, 0).save(tmp_path / ("%d.png" % i))
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % run, str(tmp_path / "1.png"), str(tmp_path / "2.png"))
    assert r.returncode == 0 and r.stdout.startswith("distance "), r.stderr[-2000:]


def loopback_failures(pids):
    """Checks, while the launcher's tasks run, that each runs in a network namespace of
    its own (netns.py) and that its server's port cannot be reached from this one.
    Returns what failed ([] when all held), or None where no namespace can be made
    (nothing was checked: the caller reports a skip, never a pass)."""
    import socket

    if NO_NAMESPACE:
        return None
    failures, mine = [], os.readlink("/proc/self/ns/net")
    for name, pid in pids.items():
        if os.readlink("/proc/%d/ns/net" % pid) == mine:
            failures.append("%s shares this process's network namespace" % name)
        args = open("/proc/%d/cmdline" % pid).read().split("\0")
        port = [a for a in args if a.startswith("--%s_hosts=" % name.rstrip("0123456789"))][0]
        port = int(port.split("=")[1].split(",")[int(name[-1])].rsplit(":", 1)[1])
        with socket.socket() as s:
            s.settimeout(2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                failures.append("%s's port %d answers outside its namespace" % (name, port))
    return failures


@pytest.mark.slow
def test_a_killed_worker_does_not_stop_the_run(six_shard_records, tmp_path):
    run = str(tmp_path / "run")
    # no step target: the chief stops after a minute (--max_minutes), whatever the machine's speed
    proc = launch(run, 2, "--records_dir=%s" % six_shard_records, "--max_steps=10000000", "--max_minutes=1")
    # both workers have logged a loss (either may be first): the run is under way on both
    wait_until(proc, run, lambda: logged_steps(run, 0) and logged_steps(run, 1), "both workers train", 300)
    pids = json.load(open(os.path.join(run, "logs", "pids.json")))
    unreachable = loopback_failures(pids)
    os.kill(pids["worker1"], signal.SIGKILL)
    at_kill = max(logged_steps(run, 0) + logged_steps(run, 1))
    out = finish(proc)
    assert "worker0 0" in out and "worker1 -9" in out and "ps0 0" in out, out[-3000:]
    assert global_step(run) >= at_kill + 100 and steps_ran(run)[0] > 0  # training went on without it
    assert "workers [1] did not report: stopping" in open(os.path.join(run, "logs", "ps0.log")).read()
    assert_no_process_left(run)
    if unreachable is None:  # the rest held; the loopback-only claim was not checked here
        pytest.skip("the launcher's servers were not checked for loopback-only: no network namespace can be "
                    "made here (%s)" % NO_NAMESPACE)
    assert unreachable == [], unreachable


@pytest.mark.slow
def test_sync_replicas(six_shard_records, tmp_path):
    run = str(tmp_path / "run")
    out = finish(launch(run, 2, "--records_dir=%s" % six_shard_records, "--max_steps=200", "--sync_replicas",
                        "--moving_average_decay=0.99"))
    assert "exit codes: ps0 0, worker0 0, worker1 0" in out, out[-3000:]
    step = global_step(run)
    ran = steps_ran(run)
    # a global step is one update from 2 workers' gradients: about 2 local steps each
    assert 200 <= step <= 202 and ran[0] > 0 and ran[1] > 0 and ran[0] + ran[1] >= 2 * 200 - 2, (step, ran)
    assert_no_process_left(run)


def test_sync_replicas_needs_a_cluster(tmp_path):
    r = cli("siamese_graph.train", "--records_dir=%s" % tmp_path, "--train_dir=%s" % (tmp_path / "r"),
                "--sync_replicas")
    assert r.returncode == 1 and "--sync_replicas needs a cluster" in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_lost_parameter_server_ends_the_workers_in_one_line_and_a_restart_resumes(six_shard_records, tmp_path):
    run = str(tmp_path / "run")
    proc = launch(run, 2, "--records_dir=%s" % six_shard_records, "--max_steps=100000")
    wait_until(proc, run, lambda: tf.train.latest_checkpoint(run), "the chief's first checkpoint", 300)
    time.sleep(3)
    assert proc.poll() is None, task_logs(run)
    os.kill(json.load(open(os.path.join(run, "logs", "pids.json")))["ps0"], signal.SIGKILL)
    out = finish(proc, timeout=180)
    assert "ps0 -9, worker0 1, worker1 1" in out, out[-3000:]
    for i in (0, 1):
        last = open(os.path.join(run, "logs", "worker%d.log" % i)).read().strip().splitlines()[-1]
        assert last.startswith("error: lost parameter server 127.0.0.1:") and "restart the cluster" in last, last
    assert_no_process_left(run)
    kept = global_step(run)
    out = finish(launch(run, 2, "--records_dir=%s" % six_shard_records, "--max_steps=%d" % (kept + 50)))
    assert "exit codes: ps0 0, worker0 0, worker1 0" in out, out[-3000:]
    assert "training from step %d to" % kept in open(os.path.join(run, "logs", "worker0.log")).read()


def test_a_refused_flag_stops_the_cluster_at_once_with_the_reason(six_shard_records, tmp_path):
    run = str(tmp_path / "run")
    out = finish(launch(run, 2, "--records_dir=%s" % six_shard_records, "--max_steps=10", "--margin=-1"), timeout=240)
    assert "error: worker" in out and "--margin=-1: must be > 0" in out, out[-3000:]
    # the launcher stops the parameter server at once (SIGTERM: -15) when a worker refuses its flags;
    # before, it was left to wait for the workers and killed (-9) a minute after the chief.
    # (no wall-clock bound: on a slow machine three TensorFlow imports alone take most of a minute)
    assert "ps0 -15" in out and "did not exit" not in out, out[-3000:]
    assert_no_process_left(run)


def test_a_port_in_use_is_named_in_one_line():
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        conf = cluster.resolve("127.0.0.1:%d" % port, "127.0.0.1:%d" % cluster.free_ports(1)[0], "ps", 0, None)
        with pytest.raises(DataError, match=r"^127.0.0.1:%d: the ps task 0's server could not start there "
                                            r"\(.*\): is the port in use by another process\?$" % port):
            cluster.server(conf)
    finally:
        taken.close()
