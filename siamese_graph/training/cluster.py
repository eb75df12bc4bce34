"""Between-graph replicated training on TensorFlow's parameter-server runtime.

The TF1 way, used as it is: a tf.distribute.Server per task, a ClusterSpec,
variables placed on the parameter servers by replica_device_setter, every worker
building the same graph, MonitoredTrainingSession with worker 0 as the chief.
What this module adds is bookkeeping only:

- ClusterConfig: the cluster from host lists or from the TF_CONFIG environment
  variable (the standard {"cluster": {...}, "task": {"type", "index"}}), checked.
- A done-queue on each parameter server (a FIFOQueue with a shared name): every
  worker enqueues its index when it stops, and a parameter server exits once all
  workers are done. Once the chief is done (its last checkpoint is written), a
  worker that has not reported is waited for while its server accepts
  connections, and given up `grace_seconds` after it stops accepting them (a
  killed worker); every wait is bounded. No server.join().
"""
import dataclasses
import json
import socket
import time

import tensorflow as tf
from absl import logging

from siamese_graph.errors import ArgumentError, DataError

v1 = tf.compat.v1
JOBS = ("ps", "worker")
# A worker's step that waits this long on a parameter server fails (DeadlineExceeded)
# instead of hanging: a lost parameter server ends the run with a message.
OPERATION_TIMEOUT_MS = 30000
# Once the chief is done, a parameter server waits at most this many grace periods
# for the other workers, even while their servers still accept connections.
MAX_WAIT_GRACES = 10


@dataclasses.dataclass
class ClusterConfig:
    ps_hosts: list
    worker_hosts: list
    job_name: str
    task_index: int

    @property
    def is_chief(self):
        return self.job_name == "worker" and self.task_index == 0

    @property
    def num_workers(self):
        return len(self.worker_hosts)

    def spec(self):
        return tf.train.ClusterSpec({"ps": self.ps_hosts, "worker": self.worker_hosts})

    def task_device(self):
        return "/job:%s/task:%d" % (self.job_name, self.task_index)


def _hosts(value, name):
    hosts = [h.strip() for h in value.split(",") if h.strip()] if value else []
    for h in hosts:
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ArgumentError(name, value, "expected host:port[,host:port...] (bad entry %r)" % h)
    if len(set(hosts)) != len(hosts):
        raise ArgumentError(name, value, "a host:port is listed twice")
    return hosts


def from_tf_config(text):
    """A ClusterConfig from TF_CONFIG's JSON text. Raises ArgumentError."""
    try:
        conf = json.loads(text)
        cluster, task = conf["cluster"], conf["task"]
        ps, workers = cluster.get("ps", []), list(cluster.get("worker", []))
        chief = cluster.get("chief", [])
        job, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ArgumentError("TF_CONFIG", text[:80], "not a cluster and task in JSON (%s)" % e)
    if chief:  # TF_CONFIG may name the chief apart: it is worker 0 here
        workers = list(chief) + workers
        if job == "chief":
            job, index = "worker", 0
        elif job == "worker":
            index += len(chief)
    return ClusterConfig(_hosts(",".join(ps), "TF_CONFIG"), _hosts(",".join(workers), "TF_CONFIG"), job, index)


def resolve(ps_hosts, worker_hosts, job_name, task_index, tf_config):
    """The cluster this process is a task of, or None for single-machine training.

    The flags (ps_hosts, worker_hosts, job_name, task_index) or TF_CONFIG (its
    text, or None), one or the other; both is accepted only when they agree.
    Raises ArgumentError for an inconsistent cluster."""
    from_flags = None
    if ps_hosts or worker_hosts or job_name:
        if not (ps_hosts and worker_hosts and job_name):
            raise ArgumentError("job_name", job_name, "a cluster needs --ps_hosts, --worker_hosts and "
                                "--job_name together")
        from_flags = ClusterConfig(_hosts(ps_hosts, "ps_hosts"), _hosts(worker_hosts, "worker_hosts"),
                                   job_name, task_index)
    # a TF_CONFIG that is set is a cluster and task, or a mistake (never ignored)
    from_env = from_tf_config(tf_config) if tf_config and tf_config.strip() else None
    if from_flags and from_env and from_flags != from_env:
        raise ArgumentError("TF_CONFIG", tf_config[:80], "disagrees with --ps_hosts/--worker_hosts/--job_name/"
                            "--task_index; give one or the other")
    if from_flags:
        check(from_flags)
    elif from_env:
        try:
            check(from_env)
        except ArgumentError as e:  # name what the user gave: TF_CONFIG, not flags
            raise ArgumentError("TF_CONFIG", tf_config[:80], e.message)
    return from_flags or from_env


def check(config):
    if config.job_name not in JOBS:
        raise ArgumentError("job_name", config.job_name, "choose from ps, worker")
    if not config.ps_hosts:
        raise ArgumentError("ps_hosts", "", "the cluster has no parameter server")
    if not config.worker_hosts:
        raise ArgumentError("worker_hosts", "", "the cluster has no worker (worker 0 is the chief)")
    hosts = config.ps_hosts if config.job_name == "ps" else config.worker_hosts
    if not 0 <= config.task_index < len(hosts):
        raise ArgumentError("task_index", config.task_index, "out of range: the cluster has %d %s task%s"
                            % (len(hosts), config.job_name, "" if len(hosts) == 1 else "s"))
    if set(config.ps_hosts) & set(config.worker_hosts):
        raise ArgumentError("worker_hosts", ",".join(config.worker_hosts), "shares a host:port with a parameter server")


def server(config):
    """This task's tf.distribute.Server (started). DataError naming this task's
    host:port when its server cannot start there (the port is taken)."""
    try:
        return tf.distribute.Server(config.spec(), job_name=config.job_name, task_index=config.task_index,
                                    start=True)
    except tf.errors.UnknownError as e:
        hosts = config.ps_hosts if config.job_name == "ps" else config.worker_hosts
        raise DataError("%s: the %s task %d's server could not start there (%s): is the port in use by "
                        "another process?" % (hosts[config.task_index], config.job_name, config.task_index,
                                              str(e).splitlines()[0][:100]))


def session_config(config):
    """A worker sees only the parameter servers and itself (device_filters), so it
    neither waits for nor depends on the other workers."""
    return v1.ConfigProto(device_filters=["/job:ps", config.task_device()], allow_soft_placement=True,
                          operation_timeout_in_ms=OPERATION_TIMEOUT_MS)


def device_setter(config):
    """Variables on the parameter servers (round robin), every other op on this worker."""
    return v1.train.replica_device_setter(cluster=config.spec(), worker_device=config.task_device())


def done_queues(config):
    """One FIFOQueue a parameter server, shared by name across the cluster's sessions."""
    queues = []
    for i in range(len(config.ps_hosts)):
        with v1.device("/job:ps/task:%d" % i):
            queues.append(tf.queue.FIFOQueue(config.num_workers, tf.int32, shapes=[],
                                             shared_name="siamese_done_queue_%d" % i, name="done_queue_%d" % i))
    return queues


def signal_done_ops(config):
    """Ops a worker runs when it stops: its index into every parameter server's queue."""
    return [q.enqueue(config.task_index) for q in done_queues(config)]


def signal_done(target, ops, config):
    """Runs signal_done_ops in a fresh session on target; a lost parameter server is ignored."""
    try:
        with v1.Session(target, config=session_config(config)) as sess:
            sess.run(ops, options=v1.RunOptions(timeout_in_ms=30000))
    except tf.errors.OpError as e:
        logging.warning("could not tell the parameter servers this worker is done (%s)", str(e).splitlines()[0])


def serve_parameters(config, grace_seconds=30.0, poll_seconds=2.0):
    """A parameter server's life: serve until every worker is done. Once the chief
    is done, a worker that has not reported is waited for while its server still
    accepts connections (it is finishing its last step or closing its session,
    which can take many seconds on a loaded machine); it is given up once its
    server has refused connections for grace_seconds (killed, or gone without a
    word), and every wait ends MAX_WAIT_GRACES * grace_seconds after the chief.

    Returns the worker indices seen done."""
    srv = server(config)
    graph = tf.Graph()
    with graph.as_default():
        queue = done_queues(config)[config.task_index]
        token = queue.dequeue()
    done, chief_done_at, silent_since = set(), None, {}
    sess_config = v1.ConfigProto(device_filters=["/job:ps/task:%d" % config.task_index])
    with v1.Session(srv.target, graph=graph, config=sess_config) as sess:
        logging.info("parameter server %d serving %d workers", config.task_index, config.num_workers)
        while len(done) < config.num_workers:
            if chief_done_at is not None:
                now = time.time()
                waiting = sorted(set(range(config.num_workers)) - done)
                for i in waiting:
                    if listening(config.worker_hosts[i], timeout=min(poll_seconds, 1.0)):
                        silent_since.pop(i, None)
                    else:
                        silent_since.setdefault(i, now)
                why = stop_waiting(now, chief_done_at, {i: silent_since.get(i) for i in waiting},
                                   grace_seconds, MAX_WAIT_GRACES * grace_seconds)
                if why:
                    logging.info("chief done %.0f s ago; workers %s did not report: stopping (%s)",
                                 now - chief_done_at, waiting, why)
                    break
            try:
                index = sess.run(token, options=v1.RunOptions(timeout_in_ms=int(poll_seconds * 1000)))
            except tf.errors.DeadlineExceededError:
                continue
            done.add(int(index))
            logging.info("worker %d done (%d of %d)", index, len(done), config.num_workers)
            if index == 0:
                chief_done_at = time.time()
    return done


def stop_waiting(now, chief_done_at, silent_since, grace_seconds, max_wait_seconds):
    """Why a parameter server stops waiting for the workers that have not reported
    done, or None to wait on.

    Args:
      silent_since: {worker index: since when its server has refused connections,
        or None while it accepts them}, for each worker not done.
    """
    if all(t is not None and now - t > grace_seconds for t in silent_since.values()):
        return "their servers have refused connections for %.0f s" % grace_seconds
    if now - chief_done_at > max_wait_seconds:
        return "waited %.0f s; their servers still accept connections" % max_wait_seconds
    return None


def listening(host, timeout=2.0):
    """Whether host:port accepts a TCP connection now (a task's tf.distribute.Server
    listens there for as long as its process runs)."""
    name, _, port = host.rpartition(":")
    try:
        socket.create_connection((name, int(port)), timeout=timeout).close()
        return True
    except OSError:
        return False


def _ephemeral_range():
    """The kernel's range for outgoing connections' local ports (Linux), or its usual default."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(v) for v in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n, attempts=1000):
    """n distinct TCP ports on 127.0.0.1 that are free now (each bound, then released).

    Chosen at random outside the kernel's ephemeral range: a port from bind(0)
    lies inside it, and between this call and the server binding it any
    outgoing connection on the machine (our own tasks connecting to each other
    included) may take it as its local port, and the server then fails to start.
    """
    import random

    lo, hi = _ephemeral_range()
    candidates = (10000, lo - 1) if lo - 10000 >= 1000 else (hi + 1, 65535)
    rng, ports = random.SystemRandom(), []
    for _ in range(attempts):
        port = rng.randint(*candidates)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise OSError("no %d free TCP ports on 127.0.0.1 in %d-%d" % (n, *candidates))


def local_cluster_args(num_ps, num_workers):
    """{(job, index): [--ps_hosts.., --worker_hosts.., --job_name.., --task_index..]} on 127.0.0.1 free ports."""
    ports = free_ports(num_ps + num_workers)
    ps = ",".join("127.0.0.1:%d" % p for p in ports[:num_ps])
    workers = ",".join("127.0.0.1:%d" % p for p in ports[num_ps:])
    tasks = [("ps", i) for i in range(num_ps)] + [("worker", i) for i in range(num_workers)]
    return {(job, i): ["--ps_hosts=%s" % ps, "--worker_hosts=%s" % workers, "--job_name=%s" % job,
                       "--task_index=%d" % i] for job, i in tasks}


def watch_parameter_servers(config, on_lost, interval_seconds=2.0, patience_seconds=30.0):
    """Starts a daemon thread that calls on_lost(host) once a parameter server has
    refused TCP connections for patience_seconds. (MonitoredTrainingSession treats a
    lost parameter server as recoverable and waits for it to come back, without a
    word and without end; a short outage, such as a restart, still recovers.)"""
    import threading

    def watch():
        lost_since = {}
        while True:
            for host in config.ps_hosts:
                if listening(host, timeout=interval_seconds):
                    lost_since.pop(host, None)
                elif time.time() - lost_since.setdefault(host, time.time()) > patience_seconds:
                    on_lost(host)
                    return
            time.sleep(interval_seconds)

    thread = threading.Thread(target=watch, name="ps-watchdog", daemon=True)
    thread.start()
    return thread


DISPATCHER_VERSION_RPC = "/tensorflow.data.DispatcherService/GetVersion"


def dispatcher_answers(address, timeout=5.0):
    """None when a tf.data service dispatcher answers at host:port (its own GetVersion
    RPC, over the gRPC that TensorFlow installs), else the reason."""
    import grpc

    channel = grpc.insecure_channel(address)
    try:
        ask = channel.unary_unary(DISPATCHER_VERSION_RPC, request_serializer=lambda x: x,
                                  response_deserializer=lambda x: x)
        ask(b"", timeout=timeout)
        return None
    except grpc.RpcError as e:
        code = e.code()
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return "a gRPC server answers but it is not a tf.data service dispatcher"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "nothing answered within %g s" % timeout
        return "no dispatcher answers (%s)" % code.name.lower()
    finally:
        channel.close()
