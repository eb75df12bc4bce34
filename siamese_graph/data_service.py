r"""Runs a tf.data service dispatcher or worker: the pair graph on other machines' CPUs.

  python -m siamese_graph.data_service --role=dispatcher --port=5000 \
      --worker_addresses=host1:5001,host2:5001 --listen_on_every_interface
  python -m siamese_graph.data_service --role=worker --port=5001 --dispatcher=host0:5000 \
      --listen_on_every_interface
  python -m siamese_graph.train --flagfile=train.flags --data_service=grpc://host0:5000 ...

TensorFlow's own servers (tf.data.experimental.service.DispatchServer and
WorkerServer), nothing else: train sends the pair graph to the dispatcher, and
each worker runs it on its own shards (ShardingPolicy.HINT, which needs the
dispatcher to know the workers' addresses up front), so two workers never make
the same pairs. The records folder must be readable at the same path on every
worker. A server runs until SIGTERM/SIGINT, or until the process given by
--parent_pid is gone (bin/train_data_service uses that to stop its servers). A
worker waits at most --dispatcher_wait_seconds for its dispatcher to answer
(TensorFlow's own retry loop would wait forever), stopping at once on SIGTERM.

These servers have no authentication and listen on every interface (TensorFlow
has no bind option): run them on a private network only (docs/scaling.md);
bin/train_data_service runs its own in a loopback-only namespace (netns.py).
"""
import os
import signal
import time

import tensorflow as tf
from absl import flags, logging

from siamese_graph import common_flags, fileio
from siamese_graph.errors import UserError
from siamese_graph.training import cluster

flags.DEFINE_enum("role", None, ["dispatcher", "worker"], "Which server this process runs.")
flags.DEFINE_integer("port", None, "Port to listen on, on EVERY network interface of this machine: "
                     "TensorFlow's servers have no bind address and no authentication (see "
                     "--listen_on_every_interface).")
flags.DEFINE_bool("listen_on_every_interface", False, "Required to start a server (bin/train_data_service "
                  "passes it to the servers it runs in its loopback-only namespace): the server listens on every interface, reachable by anyone "
                  "who can reach this machine, with no authentication. Use it on a private network "
                  "only (docs/scaling.md). bin/train_data_service runs its servers loopback-only.")
flags.DEFINE_string("worker_addresses", None, "Dispatcher: every worker's host:port, comma-separated "
                    "(static sharding needs the full list).")
flags.DEFINE_string("dispatcher", None, "Worker: the dispatcher's host:port.")
flags.DEFINE_string("worker_address", None, "Worker: the host:port the dispatcher and clients reach it at "
                    "(default localhost:--port).")
flags.DEFINE_integer("parent_pid", None, "Exit when this process is gone.")
flags.DEFINE_float("dispatcher_wait_seconds", 60.0, "Worker: give up when the dispatcher has not answered "
                   "within this many seconds.")
FLAGS = flags.FLAGS


def start(role, port, worker_addresses=None, dispatcher=None, worker_address=None):
    """Starts a tf.data service server in this process; returns it.

    Args:
      role: "dispatcher" or "worker".
      port: the port to serve on.
      worker_addresses: dispatcher only: the workers' host:port list.
      dispatcher, worker_address: worker only: the dispatcher's host:port, and this
        worker's own.
    """
    service = tf.data.experimental.service
    if role == "dispatcher":
        return service.DispatchServer(service.DispatcherConfig(port=port, protocol="grpc",
                                                               worker_addresses=list(worker_addresses)))
    return service.WorkerServer(service.WorkerConfig(dispatcher_address=dispatcher, port=port,
                                                     worker_address=worker_address or "localhost:%d" % port))


def _wait_for_dispatcher(stop, wait_seconds):
    """True once the worker's dispatcher answers (cluster.dispatcher_answers); False after
    SIGTERM/SIGINT or wait_seconds. TensorFlow's WorkerServer would retry forever
    inside its constructor, where no signal handler runs."""
    deadline = time.time() + wait_seconds
    while stop["signal"] is None and time.time() < deadline:
        if cluster.dispatcher_answers(FLAGS.dispatcher, timeout=min(2.0, max(0.1, deadline - time.time()))) is None:
            return True
        time.sleep(0.2)
    return False


def main(argv):
    del argv
    if not FLAGS.role or not FLAGS.port:
        raise UserError("--role and --port are required")
    if not FLAGS.listen_on_every_interface:
        raise UserError("a tf.data service server listens on every network interface, with no authentication "
                        "(TensorFlow has no bind address): pass --listen_on_every_interface to start it on a "
                        "private network, or run bin/train_data_service, which keeps its servers loopback-only")
    if FLAGS.role == "dispatcher" and not FLAGS.worker_addresses:
        raise UserError("--worker_addresses is required for the dispatcher (static sharding needs the list)")
    if FLAGS.role == "worker" and not FLAGS.dispatcher:
        raise UserError("--dispatcher=HOST:PORT is required for a worker")
    stop = {"signal": None}

    def handle(signum, frame):
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    if not FLAGS.dispatcher_wait_seconds > 0:
        raise UserError("--dispatcher_wait_seconds=%g: must be above 0" % FLAGS.dispatcher_wait_seconds)
    if FLAGS.role == "worker":
        logging.info("waiting for the dispatcher at %s (up to %g s; SIGTERM stops)", FLAGS.dispatcher,
                     FLAGS.dispatcher_wait_seconds)
    if FLAGS.role == "worker" and not _wait_for_dispatcher(stop, FLAGS.dispatcher_wait_seconds):
        if stop["signal"] is not None:
            logging.info("signal %d before the worker started: stopping", stop["signal"])
            return
        raise UserError("--dispatcher=%s: no tf.data service dispatcher answered within %g s "
                        "(--dispatcher_wait_seconds)" % (FLAGS.dispatcher, FLAGS.dispatcher_wait_seconds))
    server = start(FLAGS.role, FLAGS.port, (FLAGS.worker_addresses or "").split(","), FLAGS.dispatcher,
                   FLAGS.worker_address)
    logging.info("tf.data service %s on port %d", FLAGS.role, FLAGS.port)
    while stop["signal"] is None:
        if FLAGS.parent_pid and not fileio.pid_alive(FLAGS.parent_pid):
            logging.info("parent %d is gone: stopping", FLAGS.parent_pid)
            break
        time.sleep(0.5)
    logging.info("stopping the %s", FLAGS.role)
    del server
    os._exit(0)  # the servers' threads do not stop on their own


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
