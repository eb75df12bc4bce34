"""train's flags, defined once: where the run goes, every TrainConfig field (the model,
the loss, the optimizer, the input), how long, bookkeeping, a cluster, tf.data
service input. train and inspect_pairs both load them, so that
`inspect_pairs --flagfile=train.flags` reads the default run's own flag file and
shows the pairs that run trains on.
"""
import dataclasses

from absl import flags

from siamese_graph import common_flags  # noqa: F401 (defines the shared input fields' flags)
from siamese_graph.data import preprocessing
from siamese_graph.training import cluster, train_config

# TrainConfig's input fields are shared flags; the rest of its fields are train's own.
SHARED_FIELDS = ("seed", "batch_size", "image_size", "crop", "augment", "rotation_deg", "shuffle_buffer", "cache")
# Where
flags.DEFINE_string("train_dir", None, "Checkpoints, events, flags.txt and model.json go here.")
flags.DEFINE_string("val_records_dir", None, "Records for validation; default: the first --records_dir.")
flags.DEFINE_string("val_split", "auto", "Split to validate on: auto (val if present, else test), none, or a name.")
# The model, the loss and the optimizer: a flag for each other TrainConfig field,
# with its default and help.
_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           bool: flags.DEFINE_bool}
for _f in dataclasses.fields(train_config.TrainConfig):
    if _f.name in SHARED_FIELDS:
        continue
    if _f.metadata["choices"]:
        flags.DEFINE_enum(_f.name, _f.default, _f.metadata["choices"], _f.metadata["help"])
    else:
        _DEFINE[_f.type](_f.name, _f.default, _f.metadata["help"])
# How long
flags.DEFINE_integer("max_steps", 6000, "Stop at this global step.")
flags.DEFINE_float("max_minutes", 0, "Also stop after this many minutes of this run (0: no limit).")
flags.register_validator("max_minutes", lambda v: v >= 0, "must be >= 0 (0: no limit)")
# Bookkeeping
flags.DEFINE_integer("save_checkpoint_steps", 500, "Checkpoint every this many steps.")
flags.DEFINE_integer("save_summaries_steps", 100, "TensorBoard summaries every this many steps.")
flags.DEFINE_integer("log_every_n_steps", 50, "Progress line every this many steps.")
flags.DEFINE_integer("validate_every_n_steps", 1000, "Validation every this many steps (0: never).")
flags.DEFINE_integer("val_pairs", 2000, "Pairs in each validation.")
flags.DEFINE_enum("input_priority", "idle", ["idle", "normal"], "CPU priority of the input "
                  "pipeline's threads: idle (Linux SCHED_IDLE: they use the cycles the step leaves) or normal. "
                  "One-process training with its own input only (not on a cluster or with --data_service).")
# A cluster (TensorFlow's parameter-server runtime); or the TF_CONFIG environment variable
flags.DEFINE_string("ps_hosts", None, "Cluster: parameter servers, host:port[,host:port...].")
flags.DEFINE_string("worker_hosts", None, "Cluster: workers, host:port[,...]; worker 0 is the chief.")
flags.DEFINE_enum("job_name", None, ["ps", "worker"], "Cluster: this process's job.")
flags.DEFINE_integer("task_index", 0, "Cluster: this process's index in its job.")
flags.DEFINE_bool("sync_replicas", False, "Cluster: synchronous updates (SyncReplicasOptimizer): each "
                  "global step averages --replicas_to_aggregate workers' gradients.")
flags.DEFINE_integer("replicas_to_aggregate", None, "Cluster with --sync_replicas: gradients an update "
                     "(default: the number of workers).")
flags.DEFINE_float("ps_grace_seconds", 30, "Cluster: once the chief is done, a parameter server gives up "
                   "a worker that has not reported done this long after its server stops accepting "
                   "connections, and waits at most %d times this long in all." % cluster.MAX_WAIT_GRACES)
flags.register_validator("ps_grace_seconds", lambda v: v > 0, "must be > 0")
# Input on other machines' CPUs (TensorFlow's tf.data service; see data_service.py)
flags.DEFINE_integer("cache_limit_mb", 4096, "With --cache: the most memory the decoded training photos "
                     "may take; above it the run is refused.")
flags.DEFINE_string("data_service", None, "A tf.data service dispatcher, grpc://HOST:PORT: the pair graph "
                    "runs on its workers, each on its own shards.")
FLAGS = flags.FLAGS


def config_from_flags():
    """The TrainConfig of the command line (every field is a flag of the same name)."""
    values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(train_config.TrainConfig)}
    values["crop"] = values["crop"] or preprocessing.DEFAULT_CROP
    return train_config.TrainConfig(**values)


def names():
    """The flags defined here (train declares them as its own: its --help lists them)."""
    return [f.name for f in FLAGS.get_flags_for_module(__name__)]

