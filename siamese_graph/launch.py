"""The local launchers: a whole parameter-server cluster, or a tf.data service with its
training run, as processes on this machine (bin/train_cluster, bin/train_data_service).

Each task is the project's own command (`python -m siamese_graph.train`,
`python -m siamese_graph.data_service`) on 127.0.0.1 free ports; the bin scripts
first move into a loopback-only network namespace (netns.py), so that these
unauthenticated TensorFlow servers are reachable from the launcher's processes only.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from absl import logging

from siamese_graph.errors import UserError
from siamese_graph.training import cluster as cluster_lib


def last_error_line(log_path):
    """The line of a task's log that says why it failed: its last `error:` line, else
    absl's flag error, else its last line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "(no log)"
    for marker in ("error:", "FATAL Flags parsing error", "Error:"):
        hits = [line for line in lines if marker in line]
        if hits:
            return hits[-1][:300]
    return lines[-1][:300] if lines else "(empty log)"


def cluster(num_workers, train_args, log_dir, num_ps=1, python=None, linger_seconds=60.0):
    """Runs 1 ps (or num_ps) and num_workers training tasks on 127.0.0.1, one process
    each, logs in log_dir/<job><index>.log, until the chief exits; then waits up to
    linger_seconds for the others to exit by themselves and kills what is left.

    Args:
      train_args: the train command's flags (the same for every task).
    Returns:
      ({"ps0": exit code, "worker0": ...}, the chief's exit code). Every process is reaped.
    """
    os.makedirs(log_dir, exist_ok=True)
    procs = {}
    stop = {"signal": None}

    def forward(signum, frame):
        stop["signal"] = signum
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for (job, i), cluster_args in cluster_lib.local_cluster_args(num_ps, num_workers).items():
            name = "%s%d" % (job, i)
            with open(os.path.join(log_dir, name + ".log"), "w") as log:
                procs[name] = subprocess.Popen([python or sys.executable, "-m", "siamese_graph.train", *train_args,
                                                *cluster_args], stdout=log, stderr=subprocess.STDOUT)
        with open(os.path.join(log_dir, "pids.json"), "w") as f:
            json.dump({n: p.pid for n, p in procs.items()}, f)
        logging.info("cluster on 127.0.0.1: %s; logs in %s", ", ".join(sorted(procs)), log_dir)
        failed = None
        while procs["worker0"].poll() is None and failed is None:
            # a task that refuses its flags (exit 1 or 2) fails the same way everywhere:
            # stop the others at once; a task killed by a signal leaves the rest running
            failed = next((n for n, p in procs.items() if p.poll() in (1, 2)), None)
            time.sleep(0.2)
        chief = procs["worker0"].poll()
        failed = failed or ("worker0" if chief else None)
        if failed:
            logging.error("%s failed (exit %s): %s", failed, procs[failed].returncode,
                          last_error_line(os.path.join(log_dir, failed + ".log")))
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
            linger_seconds = min(linger_seconds, 10.0)
            chief = procs["worker0"].wait() if chief is None else chief
            chief = chief or procs[failed].returncode
        deadline = time.time() + linger_seconds
        for name, p in procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                logging.warning("%s did not exit %.0f s after the chief: killing it", name, linger_seconds)
                p.kill()
                p.wait()
        return {n: p.returncode for n, p in procs.items()}, chief
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for s, handler in old.items():
            signal.signal(s, handler)

def data_service(num_workers, train_args, log_dir, python=None, start_timeout=120):
    """Starts a dispatcher and num_workers workers on 127.0.0.1 free ports (one
    process each, logs in log_dir), runs `train` with --data_service pointing at
    them, then stops the servers. Returns train's exit code; every process is reaped.
    """
    python = python or sys.executable
    os.makedirs(log_dir, exist_ok=True)
    ports = cluster_lib.free_ports(1 + num_workers)
    workers = ["127.0.0.1:%d" % p for p in ports[1:]]
    # the caller has isolated itself (netns.isolate) or was told to run on every interface
    base = [python, "-m", "siamese_graph.data_service", "--parent_pid=%d" % os.getpid(), "--listen_on_every_interface"]
    commands = {"dispatcher": base + ["--role=dispatcher", "--port=%d" % ports[0],
                                      "--worker_addresses=%s" % ",".join(workers)]}
    for i, w in enumerate(workers):
        commands["worker%d" % i] = base + ["--role=worker", "--port=%d" % ports[1 + i],
                                           "--dispatcher=127.0.0.1:%d" % ports[0], "--worker_address=%s" % w]
    procs = {}
    try:
        for name, cmd in commands.items():
            with open(os.path.join(log_dir, "data_service_%s.log" % name), "w") as log:
                procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + start_timeout
        while True:  # wait for the dispatcher to listen
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or procs["dispatcher"].poll() is not None:
                    raise UserError("the tf.data service dispatcher did not start; see %s" % log_dir)
                time.sleep(0.2)
        logging.info("tf.data service on 127.0.0.1:%d with %d workers; logs in %s", ports[0], num_workers, log_dir)
        return subprocess.call([python, "-m", "siamese_graph.train", *train_args,
                                "--data_service=grpc://127.0.0.1:%d" % ports[0]])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
