r"""Trains a siamese network in the TF1 graph style.

  python -m siamese_graph.train --flagfile=train.flags
  python -m siamese_graph.train --flagfile=configs/densenet121.flags --train_dir=runs/dn

Writes into --train_dir: checkpoints (model.ckpt-N), TensorBoard events (loss,
learning rate, beta1, same/different distances, sample pairs, validation AUC),
flags.txt (every flag, loadable with --flagfile), model.json (what inference
needs: net, head, image size, crop...; plus the code revision and whether the
working tree had uncommitted changes). A rerun with the same --train_dir resumes
at the saved step. SIGINT/SIGTERM save a checkpoint and exit cleanly.

The graph and the loop are siamese_graph.training.graphs's; this module owns the flags,
the checks and the train_dir.
"""
import collections
import contextlib
import os
import re
import sys

import tensorflow as tf
from absl import flags, logging

from siamese_graph import common_flags, errors, fileio, train_flags
from siamese_graph.data import pair_cache, pairs, records
from siamese_graph.errors import UserError
from siamese_graph.model import traindir
from siamese_graph.training import cluster, graphs, loop, session_hooks

v1 = tf.compat.v1
common_flags.declare("records_dir", "split", "checkpoint_path", *train_flags.SHARED_FIELDS, *train_flags.names())
FLAGS = flags.FLAGS

DEFAULT_SPLIT = "train"


def resolve_val_split(record_set, split):
    if split == "none":
        return None
    if split == "auto":
        return next((s for s in ("val", "test") if s in record_set.splits), None)
    return split


def check_flags():
    """Every flag checked before anything is written; returns the TrainConfig."""
    if not FLAGS.records_dir:
        raise UserError("--records_dir is required")
    if not FLAGS.train_dir:
        raise UserError("--train_dir is required")
    if FLAGS.max_steps < 1:
        raise UserError("--max_steps=%d: must be at least 1" % FLAGS.max_steps)
    for name in ("save_checkpoint_steps", "save_summaries_steps", "log_every_n_steps"):
        if FLAGS[name].value < 1:
            raise UserError("--%s=%d: must be at least 1" % (name, FLAGS[name].value))
    if FLAGS.validate_every_n_steps < 0 or FLAGS.val_pairs < 1:
        raise UserError("--validate_every_n_steps must be >= 0 and --val_pairs >= 1")
    config = train_flags.config_from_flags()
    config.check()
    check_memory(config)
    fileio.check_writable_dir(FLAGS.train_dir, "train_dir")
    return config


def check_memory(config):
    """ArgumentError when a step's activations alone would not fit in this machine's memory."""
    config.check_memory(loop.machine_memory())


def resume_checkpoint(train_dir):
    """The checkpoint a run in train_dir resumes from (--checkpoint_path, else the latest),
    read back in full; None for a fresh run. UserError for a damaged or missing one."""
    latest = tf.train.latest_checkpoint(train_dir) if os.path.isdir(train_dir) else None
    if not latest:
        if FLAGS.checkpoint_path:
            raise UserError("--checkpoint_path=%s: %s holds no checkpoint to resume from"
                            % (FLAGS.checkpoint_path, train_dir))
        return None
    try:
        ckpt = traindir.resolve_checkpoint(train_dir, FLAGS.checkpoint_path)
        traindir.check_checkpoint(ckpt)
    except traindir.DamagedCheckpoint as e:
        hint = ("; resume from an earlier one with --checkpoint_path=%s" % e.earlier[-1] if e.earlier
                else "; no earlier checkpoint is kept: delete its files to start fresh")
        raise UserError(str(e) + hint)
    except errors.DataError as e:
        raise UserError("--checkpoint_path=%s: %s" % (FLAGS.checkpoint_path, e))
    return ckpt


def cluster_from_flags():
    """The cluster.ClusterConfig of --ps_hosts... or TF_CONFIG, or None (one machine)."""
    conf = cluster.resolve(FLAGS.ps_hosts, FLAGS.worker_hosts, FLAGS.job_name, FLAGS.task_index,
                           os.environ.get("TF_CONFIG"))
    if conf and FLAGS.sync_replicas:
        n = FLAGS.replicas_to_aggregate or conf.num_workers
        if not 1 <= n <= conf.num_workers:
            raise UserError("--replicas_to_aggregate=%d: must be 1..%d (the workers)" % (n, conf.num_workers))
    elif FLAGS.sync_replicas:
        raise UserError("--sync_replicas needs a cluster (--ps_hosts, --worker_hosts, --job_name or TF_CONFIG)")
    return conf


Run = collections.namedtuple("Run", "config service splits val_set val_info is_chief")
Built = collections.namedtuple("Built", "graph hooks progress counter validation done_ops")


def train(locks=None):
    """Checks flags and records, prepares the train_dir, builds the graphs and runs the loop,
    on one machine or as a task of a cluster (a parameter server only serves).

    Returns (validation history, progress hook's (step, loss) pairs)."""
    conf = cluster_from_flags()
    if conf and conf.job_name == "ps":
        done = cluster.serve_parameters(conf, FLAGS.ps_grace_seconds)
        logging.info("parameter server %d: workers done: %s", conf.task_index, sorted(done))
        return [], []
    run = prepare(conf, locks)
    server = cluster.server(conf) if conf else None
    if conf:
        cluster.watch_parameter_servers(conf, lambda host: lost_parameter_server(host, conf))
    built = build(run, conf)
    log_setup(run, conf)
    try:
        loop.run_loop(built.graph, FLAGS.train_dir, built.hooks, FLAGS.max_steps, FLAGS.save_checkpoint_steps,
                      FLAGS.save_summaries_steps, master=server.target if server else "", is_chief=run.is_chief,
                      session_config=loop.session_config(run.config, cluster.session_config(conf) if conf else None))
    except Exception as e:  # noqa: BLE001 - explain() gives back a bug as it came
        error = explain(e, run, conf)
        if error is e:
            raise
        if error is not None:
            raise error from None
        # this worker's part is over: the chief finished while it waited (nothing to signal)
        logging.info("worker %d ran %d of the global steps", conf.task_index, built.counter.steps)
        return [], built.progress.losses
    if conf:
        logging.info("worker %d ran %d of the global steps", conf.task_index, built.counter.steps)
        cluster.signal_done(server.target, built.done_ops, conf)
    logging.info("done; checkpoint %s", tf.train.latest_checkpoint(FLAGS.train_dir))
    return (built.validation.history if built.validation else []), built.progress.losses


def prepare(conf, locks):
    """Every check before anything is written, then the train_dir readied by the chief
    (locked, checked, run record written, rewound to --checkpoint_path). Returns a Run."""
    config = check_flags()
    service = check_data_service(FLAGS.data_service)
    record_dirs = FLAGS.records_dir.split(",")
    splits = [pairs.pairable_split(d, FLAGS.split or DEFAULT_SPLIT) for d in record_dirs]
    if conf:
        splits = deal_shards(splits, conf)
    for s in splits:
        if config.batch_size // 2 > s.photos:
            raise UserError("--batch_size=%d: more pairs of each kind than %s has photos (%d)"
                            % (config.batch_size, s, s.photos))
    if config.cache:
        check_cache(splits, config)
    val_set = records.RecordSet(FLAGS.val_records_dir or record_dirs[0])
    val_split = resolve_val_split(val_set, FLAGS.val_split) if FLAGS.validate_every_n_steps else None
    is_chief = conf is None or conf.is_chief
    val_info = None
    if val_split and is_chief:  # the chief validates
        val_info = val_set.split(val_split)
        pairs.check_pairable(val_info)
    if is_chief:  # the chief owns the train_dir's records, as it owns its checkpoints
        if locks is not None:  # one writer of a train_dir at a time, held until training ends
            locks.enter_context(fileio.exclusive(FLAGS.train_dir, "train"))
        traindir.check_own_folder(FLAGS.train_dir)
        traindir.check_same_model(FLAGS.train_dir, config.model_config())
        resume = resume_checkpoint(FLAGS.train_dir)
        traindir.write_run_record(FLAGS.train_dir, config.model_config(), FLAGS.flags_into_string())
        if resume and resume != tf.train.latest_checkpoint(FLAGS.train_dir):
            traindir.rewind(FLAGS.train_dir, resume)
            logging.info("resuming from %s (--checkpoint_path)", resume)
    return Run(config, service, splits, val_set, val_info, is_chief)


def build(run, conf):
    """The training graph (graphs.build_training_graph, on the cluster's devices), the
    validation graph and the hooks. Returns a Built."""
    sync = ((FLAGS.replicas_to_aggregate or conf.num_workers, conf.num_workers)
            if conf and FLAGS.sync_replicas else None)
    with v1.device(cluster.device_setter(conf) if conf else None):
        graph = graphs.build_training_graph(run.splits, run.config, sync_replicas=sync, data_service=run.service)
        done_ops = cluster.signal_done_ops(conf) if conf else []
        progress = session_hooks.ProgressHook(graph, FLAGS.log_every_n_steps, FLAGS.max_steps, run.config.batch_size)
        counter = session_hooks.CountHook()
        hooks = [progress, counter, session_hooks.StopHook(FLAGS.max_minutes)]
        if FLAGS.input_priority == "idle" and not conf and not run.service:  # else the new threads include gRPC's
            hooks.append(session_hooks.InputPriorityHook())
        if graph.sync_optimizer:
            hooks.append(graph.sync_optimizer.make_session_run_hook(run.is_chief))
        validation = None
        if run.val_info:
            val_graph = graphs.build_validation_graph(run.val_info, graph.tower_fn, run.config, graph.averaged,
                                                      FLAGS.val_pairs)
            validation = session_hooks.ValidationHook(val_graph, FLAGS.validate_every_n_steps, FLAGS.train_dir,
                                                      graph.global_step)
            hooks.append(validation)
    return Built(graph, hooks, progress, counter, validation, done_ops)


def log_setup(run, conf):
    """What runs, in a few log lines: validation, the arithmetic, the data and the cluster."""
    config = run.config
    if run.val_info:
        logging.info("validating on %s every %d steps", run.val_info, FLAGS.validate_every_n_steps)
    if config.mixed_precision == "bfloat16" and loop.native_bf16() is False:
        logging.warning("--mixed_precision=bfloat16: this CPU has none of %s; oneDNN emulates bfloat16 "
                        "and the step may be slower than in float32", ", ".join(loop.BF16_CPU_FEATURES))
    logging.info("arithmetic: %s (--mixed_precision=%s; CPU bfloat16: %s)",
                 "bfloat16 convolutions" if loop.resolved_precision(config.mixed_precision) == "bfloat16"
                 else "float32", config.mixed_precision, loop.native_bf16())
    logging.info("training %s/%s on %s%s", config.net, config.head, ", ".join(str(s) for s in run.splits),
                 " as %s of %d workers%s" % (conf.task_device(), conf.num_workers, " (chief)" if run.is_chief else "")
                 if conf else "")


def explain(e, run, conf):
    """What an error of the session loop means, in one place: a UserError in one line
    for what the user can act on; None when this cluster worker's part is simply over
    (the chief finished while it waited); e itself for a bug (its traceback is kept)."""
    if isinstance(e, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)):
        if not conf:
            return e
        if not run.is_chief and traindir.finished(FLAGS.train_dir, FLAGS.max_steps):
            # The chief saved the last checkpoint and the parameter servers left while
            # this worker waited (with --sync_replicas, for a sync token): training is over.
            logging.info("worker %d: the chief finished training (%s) while this worker waited",
                         conf.task_index, tf.train.latest_checkpoint(FLAGS.train_dir))
            return None
        return UserError("lost contact with the cluster (%s); restart the cluster: training resumes from the "
                         "last checkpoint in %s" % (str(e).splitlines()[0][:150], FLAGS.train_dir))
    if isinstance(e, v1.train.NanLossDuringTrainingError):
        return UserError("the loss became NaN; lower the learning rate (--lr_max or --learning_rate) "
                         "or raise --epsilon; the last good checkpoint is in %s" % FLAGS.train_dir)
    if isinstance(e, tf.errors.DataLossError):
        resume_checkpoint(FLAGS.train_dir)  # raises for a damaged checkpoint
        return corrupt_records_error(e, [s.records_dir for s in run.splits] + [run.val_set.path])
    if isinstance(e, (tf.errors.ResourceExhaustedError, tf.errors.UnknownError, OSError)):
        if not errors.is_disk_full(e):
            return e
        traindir.remove_temp_checkpoints(FLAGS.train_dir)
        return UserError("no space left on device writing the checkpoint in %s; free space and rerun "
                         "(the last complete checkpoint, %s, is kept)"
                         % (FLAGS.train_dir, tf.train.latest_checkpoint(FLAGS.train_dir)))
    if isinstance(e, (tf.errors.NotFoundError, tf.errors.InvalidArgumentError)):
        if (message := pairs.disagreement(e)):
            return UserError(message)
        if "checkpoint" in str(e).lower() or "Restoring" in str(e):
            return UserError("%s: its checkpoint does not match this model (%s); use another "
                             "--train_dir or delete it to start fresh"
                             % (FLAGS.train_dir, str(e).splitlines()[0][:150]))
    return e


def check_cache(splits, config):
    """Logs what --cache holds (in each process that makes pairs: this one, or each
    tf.data service worker); UserError above --cache_limit_mb."""
    need = sum(pair_cache.cache_bytes(s, config.image_size, config.crop, config.augment, config.scale_jitter)
               for s in splits)
    photos = sum(s.photos for s in splits)
    logging.info("cache: %d photos decoded once, %.1f MiB in memory", photos, need / 2 ** 20)
    if need > FLAGS.cache_limit_mb * 2 ** 20:
        raise UserError("--cache: the %d training photos take %.0f MiB decoded, more than --cache_limit_mb=%d; "
                        "raise the limit if the machine has the memory, or train with --nocache"
                        % (photos, need / 2 ** 20, FLAGS.cache_limit_mb))


def check_data_service(address):
    """(address, job name) for --data_service, or None; UserError when it is not a reachable dispatcher.

    The job name comes from the train_dir: a cluster's workers (one train_dir) share
    one job, each getting other batches; another run is another job."""
    if not address:
        return None
    import hashlib
    import socket

    m = re.fullmatch(r"grpc://([^:/]+):(\d+)", address)
    if not m:
        raise UserError("--data_service=%s: expected grpc://HOST:PORT" % address)
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=5).close()
    except OSError as e:
        raise UserError("--data_service=%s: no tf.data service dispatcher answers there (%s)"
                        % (address, e.strerror or e))
    reason = cluster.dispatcher_answers("%s:%s" % (m.group(1), m.group(2)))
    if reason:
        raise UserError("--data_service=%s: %s" % (address, reason))
    job = "siamese-" + hashlib.sha256(os.path.abspath(FLAGS.train_dir).encode()).hexdigest()[:12]
    return address, job


def lost_parameter_server(host, conf):
    """Ends this worker when a parameter server is gone for good (the watchdog's call)."""
    if traindir.finished(FLAGS.train_dir, FLAGS.max_steps):
        logging.info("worker %d: training is over (%s) and the parameter servers have left",
                     conf.task_index, tf.train.latest_checkpoint(FLAGS.train_dir))
        os._exit(0)
    print("error: lost parameter server %s for %.0f s; restart the cluster: training resumes from the last "
          "checkpoint in %s (%s)" % (host, 30, FLAGS.train_dir, tf.train.latest_checkpoint(FLAGS.train_dir)),
          file=sys.stderr, flush=True)
    os._exit(1)


def deal_shards(splits, conf):
    """Each worker's part of the training splits (records.Split.deal), checked for pairs."""
    dealt = []
    for s in splits:
        nonempty = sum(1 for sh in s.shards if sh["records"])
        if nonempty < conf.num_workers:
            logging.warning("%s has %d shards for %d workers: some shards are read by two workers "
                            "(write more with make_records --num_shards)", s, nonempty, conf.num_workers)
        part = s.deal(conf.task_index, conf.num_workers)
        try:
            pairs.check_pairable(part)
        except errors.Error as e:
            raise UserError("%s: worker %d's shards cannot make pairs (%s); write more, smaller shards "
                            "with make_records --num_shards" % (s, conf.task_index, e))
        dealt.append(part)
    return dealt


def corrupt_records_error(err, record_dirs):
    """A UserError naming the corrupt shard behind a DataLossError, searched in every records folder."""
    first = (err.message or str(err)).splitlines()[0][:120]
    for d in dict.fromkeys(record_dirs):
        path = records.RecordSet(d).find_corrupt_shard()
        if path:
            return UserError("%s: corrupt shard (%s); rewrite it with make_records --overwrite" % (path, first))
    return UserError("a record could not be read (%s) in %s; run make_records --verify on each"
                     % (first, ", ".join(dict.fromkeys(record_dirs))))


def main(argv):
    del argv
    v1.logging.set_verbosity(v1.logging.ERROR)  # v1 deprecation chatter; absl logging stays on
    logging.set_verbosity(logging.INFO)
    with contextlib.ExitStack() as locks, tf.Graph().as_default():  # a fresh graph; eager stays on elsewhere
        train(locks)


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
