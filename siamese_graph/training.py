"""The training graph, the validation graph and the session loop, from plain arguments.

    graph = training.build_training_graph(splits, config)        # tensors
    val = training.build_validation_graph(val_split, graph.tower_fn, config, graph.averaged)
    training.run_loop(graph, train_dir, hooks, ...)               # MonitoredTrainingSession

`train` (the command) turns flags into a TrainConfig, checks the train_dir and
calls these; any other way of running training (a cluster) builds the same
graph with build_training_graph and only runs it differently. Nothing here
reads flags.
"""
import collections
import dataclasses
import math
import os
import signal
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import rewriter_config_pb2

from siamese_graph import metrics, pairs, preprocessing, schedules, siamese
from siamese_graph.errors import ArgumentError
from siamese_graph.nets import nets_factory

v1 = tf.compat.v1

# Validation pairs: drawn in batches of this size from a pair graph with this
# fixed seed, so every validation of a run scores the same pairs.
VAL_BATCH_SIZE = 100
VAL_SEED = 12345
# Each records folder's pair graph is seeded seed + RECORDS_SEED_STRIDE * its index.
RECORDS_SEED_STRIDE = 1000
# Bounds that keep a typo from allocating the machine's memory (a step holds
# 2 x batch_size images of image_size^2 x 3 floats, and their activations).
MAX_BATCH_SIZE = 4096
MAX_IMAGE_SIZE = 512
LOSS_PAIRS = ("given", "all", "active")  # TrainConfig.loss_pairs
MIXED_PRECISION = ("auto", "none", "bfloat16")  # TrainConfig.mixed_precision
WEIGHT_DECAY_MODES = ("l2", "decoupled")  # TrainConfig.weight_decay_mode
# CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic; without them oneDNN emulates it
BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")
AMP_ALLOWLIST_REMOVE = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE"
# Pairs shown in TensorBoard's image and text summaries.
SUMMARY_PAIRS = 6


def _field(default, help_text, choices=None):
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training graph. The train command has a flag of
    each name, with these defaults and help texts."""
    # the model (saved as model.json; see nets_factory.MODEL_KEYS)
    net: str = _field("convnet", "Tower.", sorted(nets_factory.NETS))
    head: str = _field("absdiff", "absdiff: |f_a - f_b| -> dense; euclidean: ||f_a - f_b||.", list(siamese.HEADS))
    head_units: int = _field(128, "absdiff head: units of the dense layer.")
    head_identity: bool = _field(False, "absdiff head: start the dense layer at the identity (the Euclidean "
                                 "head) and decay its weights towards it instead of towards zero.")
    l2_normalize: bool = _field(True, "L2-normalize tower features (fixes the margin's scale).")
    convnet_width: float = _field(1.0, "convnet: filter multiplier (1: 16-32-64-128, 2: 32-64-128-256).")
    convnet_embedding: int = _field(0, "convnet: a linear dense embedding of this size on top (0: the conv "
                                    "features).")
    embedding_size: int = _field(32, "densenet121: size of the final embedding.")
    growth_rate: int = _field(32, "densenet121: growth rate k.")
    theta: float = _field(0.5, "densenet121: compression factor in (0, 1].")
    epsilon: float = _field(1e-6, "Added under the square root of the distance.")
    image_size: int = _field(64, "Side of the square network input, in pixels.")
    crop: str = _field(preprocessing.DEFAULT_CROP, "Face box (preprocessing.parse_crop).")
    moving_average_decay: float = _field(0.0, "Keep an exponential moving average of the weights with "
                                         "this decay (FaceNet/TF-Slim style; e.g. 0.999) for validation "
                                         "and inference; 0: off.")
    # the objective
    margin: float = _field(1.0, "Contrastive-loss margin m (> 0).")
    weight_decay: float = _field(0.0, "Weight decay of the conv and dense weights (0: none); how it applies: "
                                 "--weight_decay_mode.")
    weight_decay_mode: str = _field("l2", "l2: weight_decay * l2_loss(w) added to the loss (TF-Slim's and "
                                    "FaceNet's; Adam then rescales its gradient like any other); decoupled: "
                                    "AdamW's decay, w -= learning_rate * weight_decay * w after each Adam step "
                                    "(values near 0.1-1, not 1e-4).", list(WEIGHT_DECAY_MODES))
    keep_probability: float = _field(1.0, "convnet: in training, keep each flattened conv feature with "
                                     "this probability (dropout before the embedding; 1: off).")
    loss_pairs: str = _field("given", "given: the contrastive loss over the batch's pairs; all: over every "
                             "(image_a[i], image_b[j]) pair of the batch, labelled by identity, same and "
                             "different pairs averaged apart (siamese.contrastive_loss_all_pairs); "
                             "active: as all, the different pairs averaged over those inside the margin.",
                             list(LOSS_PAIRS))
    # the input
    batch_size: int = _field(64, "Pairs per batch (even: half same, half different).")
    augment: bool = _field(False, "Training augmentation.")
    rotation_deg: float = _field(preprocessing.DEFAULT_ROTATION_DEG, "Random rotation, degrees.")
    scale_jitter: float = _field(preprocessing.SCALE_JITTER, "With --augment: each crop box scaled by a random "
                                 "factor in [1 - this, 1 + this] (zoom in and out).")
    gray_prob: float = _field(0.0, "With --augment: chance an image is made grayscale.")
    saturation: float = _field(0.0, "With --augment: colour jitter, each image's saturation scaled by a "
                               "factor in [1 - this, 1 + this] (0: off).")
    lowres_prob: float = _field(0.0, "With --augment: chance an image is made low-resolution (1/2 or 1/4 "
                                "of the side and back).")
    shuffle_buffer: int = _field(2048, "Records in the record-level shuffle buffer.")
    cache: bool = _field(False, "Decode each training photo once and make pairs in memory (pairs.py).")
    identity_runs: int = _field(1, "With --cache: up to this many pairs of one identity side by side in a "
                                   "batch, so the all-pairs loss sees more same-person pairs (1: shuffled apart).")
    shared_anchors: bool = _field(False, "With --cache: one render of each anchor for its same and its different "
                                         "pair, and one tower pass on it: 3/4 of the tower's work a step.")
    seed: int = _field(0, "Seed for shuffling, pairing, augmentation and initial weights.")
    # the arithmetic
    mixed_precision: str = _field("auto", "bfloat16: grappler's oneDNN auto mixed precision computes the "
                                  "training step's convolutions and batch norms in bfloat16 (matmuls, "
                                  "weights and checkpoints stay float32; fast on CPUs with AVX512_BF16 or AMX); "
                                  "none: float32; auto: bfloat16 where the CPU has bfloat16 arithmetic "
                                  "(AVX512_BF16 or AMX), float32 elsewhere (logged at start).",
                                  list(MIXED_PRECISION))
    # the optimizer
    lr_schedule: str = _field("cyclic", "Learning-rate schedule.", ["cyclic", "constant"])
    learning_rate: float = _field(1e-3, "constant schedule: the learning rate.")
    lr_min: float = _field(1e-4, "cyclic: lowest learning rate.")
    lr_max: float = _field(1e-3, "cyclic: highest learning rate.")
    beta1_min: float = _field(0.85, "cyclic: lowest Adam beta1 (at the highest learning rate).")
    beta1_max: float = _field(0.95, "cyclic: highest Adam beta1; the constant schedule's beta1.")
    cycle_steps: int = _field(2000, "cyclic: steps in one cycle.")

    def model_config(self):
        """What inference needs to rebuild the network (model.json's keys)."""
        return {k: getattr(self, k) for k in nets_factory.MODEL_KEYS}

    def check(self):
        """ArgumentError for a value no graph can be built with (every float finite first)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ArgumentError(f.name, value, "must be a finite number")
        for name in ("learning_rate", "lr_min", "lr_max"):
            if not getattr(self, name) > 0:
                raise ArgumentError(name, getattr(self, name), "must be > 0")
        if self.lr_max < self.lr_min:
            raise ArgumentError("lr_max", self.lr_max, "must be at least --%s=%g" % ("lr_min", self.lr_min))
        for name in ("beta1_min", "beta1_max"):
            if not 0 <= getattr(self, name) < 1:
                raise ArgumentError(name, getattr(self, name), "must be in [0, 1)")
        if self.beta1_max < self.beta1_min:
            raise ArgumentError("beta1_max", self.beta1_max, "must be at least --%s=%g" % ("beta1_min", self.beta1_min))
        if self.cycle_steps < 1:
            raise ArgumentError("cycle_steps", self.cycle_steps, "must be at least 1")
        if self.rotation_deg < 0 or self.rotation_deg > 180:
            raise ArgumentError("rotation_deg", self.rotation_deg, "must be in [0, 180]")
        if self.margin <= 0:
            raise ArgumentError("margin", self.margin, "must be > 0")
        if self.epsilon <= 0:
            raise ArgumentError("epsilon", self.epsilon, "must be > 0")
        if not 0 <= self.moving_average_decay < 1:
            raise ArgumentError("moving_average_decay", self.moving_average_decay, "must be in [0, 1)")
        if self.head not in siamese.HEADS:
            raise ArgumentError("head", self.head, "choose from %s" % ", ".join(siamese.HEADS))
        if self.mixed_precision not in MIXED_PRECISION:
            raise ArgumentError("mixed_precision", self.mixed_precision,
                                "choose from %s" % ", ".join(MIXED_PRECISION))
        if self.loss_pairs not in LOSS_PAIRS:
            raise ArgumentError("loss_pairs", self.loss_pairs, "choose from %s" % ", ".join(LOSS_PAIRS))
        if self.head_units < 1:
            raise ArgumentError("head_units", self.head_units, "must be at least 1")
        if self.weight_decay < 0:
            raise ArgumentError("weight_decay", self.weight_decay, "must be >= 0")
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ArgumentError("weight_decay_mode", self.weight_decay_mode,
                                "choose from %s" % ", ".join(WEIGHT_DECAY_MODES))
        if self.batch_size < 2 or self.batch_size % 2:
            raise ArgumentError("batch_size", self.batch_size, "must be even and at least 2 (half same, "
                                "half different pairs)")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ArgumentError("batch_size", self.batch_size, "at most %d pairs a step" % MAX_BATCH_SIZE)
        if not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ArgumentError("image_size", self.image_size, "must be in 1..%d pixels" % MAX_IMAGE_SIZE)
        for name in ("gray_prob", "lowres_prob", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ArgumentError(name, getattr(self, name), "must be in [0, 1]")
        if not 0 <= self.scale_jitter < 1:
            raise ArgumentError("scale_jitter", self.scale_jitter, "must be in [0, 1)")
        pairs.check_cache_options(self.cache, self.identity_runs, self.shared_anchors)
        if self.shuffle_buffer < 1:
            raise ArgumentError("shuffle_buffer", self.shuffle_buffer, "must be at least 1")
        preprocessing.parse_crop(self.crop)
        nets_factory.network_fn_from_config(self.model_config(), keep_probability=self.keep_probability)


    def check_memory(self, total_bytes):
        """ArgumentError when a step's activations alone would not fit in total_bytes
        (this machine's memory; None: unknown, not checked)."""
        need = self.memory_floor()
        if total_bytes and need > 0.8 * total_bytes:
            raise ArgumentError("image_size", self.image_size, "with --%s=%d a step needs at least %.1f "
                                "GiB of activations, more than this machine's %.1f GiB can hold; lower either"
                                % ("batch_size", self.batch_size, need / 2 ** 30, total_bytes / 2 ** 30))

    def memory_floor(self):
        """A lower bound, in bytes, of the activations one training step holds:
        2 x batch_size images through the tower, each keeping at least 20 floats
        per input value (the first block's conv, batch norm and ReLU outputs for
        the backward pass, 16 channels against the input's 3). An estimate to
        refuse sizes no machine here can run, not a measurement."""
        return 2 * self.batch_size * self.image_size ** 2 * 3 * 4 * 20


TrainGraph = collections.namedtuple("TrainGraph", [
    "global_step", "image_a", "image_b", "labels", "loss", "total_loss", "distance",
    "learning_rate", "beta1", "train_op", "tower_fn", "averaged", "sync_optimizer"])
TrainGraph.__doc__ = """What build_training_graph returns: the tensors a session loop runs.

averaged is a variable_scope custom getter that reads the weights' moving
averages (None without them); tower_fn builds the tower for other graphs."""

ValidationGraph = collections.namedtuple("ValidationGraph", ["iterator", "distance", "labels",
                                                             "num_batches"])


def build_inputs(splits, config, data_service=None):
    """Pair batches from one or more record splits; several alternate batch by batch.

    Args:
      splits: records.Split objects (pairs.pairable_split); a batch's identities
        all come from one of them.
      config: a TrainConfig (batch_size, image_size, crop, augment, seed, ...).
      data_service: None, or (dispatcher address "grpc://host:port", job name):
        the same pair graph then runs on the service's workers, each on its own
        shards (ShardingPolicy.HINT), and this process only receives batches.
        Consumers with the same job name share the job's batches (each batch
        goes to one of them: the cluster's workers); another name is another job.
    Returns:
      A dict of batch tensors (see pairs.pair_dataset).
    """
    datasets = [pairs.pair_dataset(s, config.batch_size, config.image_size, config.crop, config.augment,
                                   config.seed + RECORDS_SEED_STRIDE * i,
                                   shuffle_buffer=config.shuffle_buffer, rotation_deg=config.rotation_deg,
                                   gray_prob=config.gray_prob, lowres_prob=config.lowres_prob,
                                   saturation=config.saturation, scale_jitter=config.scale_jitter,
                                   service_shard=bool(data_service), cache=config.cache,
                                   identity_runs=config.identity_runs, shared_anchors=config.shared_anchors)
                for i, s in enumerate(splits)]
    ds = datasets[0] if len(datasets) == 1 else tf.data.Dataset.choose_from_datasets(
        datasets, tf.data.Dataset.range(len(datasets)).repeat())
    if data_service:
        service = tf.data.experimental.service
        address, job_name = data_service
        ds = ds.apply(service.distribute(processing_mode=service.ShardingPolicy.HINT, service=address,
                                         job_name=job_name)).prefetch(2)
    return v1.data.make_one_shot_iterator(ds).get_next()


def pair_grid(image_a, image_b, n=SUMMARY_PAIRS):
    """[1, n*S, 2*S, 3] picture of the first n pairs for TensorBoard."""
    def to_unit(x):
        lo = tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)
        hi = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
        return (x - lo) / (hi - lo + 1e-6)
    rows = tf.concat([to_unit(image_a[:n]), to_unit(image_b[:n])], axis=2)
    return tf.reshape(rows, [1, -1, rows.shape[2], 3])


def build_training_graph(splits, config, inputs=None, sync_replicas=None, data_service=None):
    """Builds the whole training graph in the default graph.

    Inputs -> two towers under one variable_scope -> head -> contrastive loss
    (the batch's pairs, or every (a_i, b_j) pair with loss_pairs="all") ->
    Adam on the learning-rate/beta1 schedule -> moving averages -> summaries.

    Args:
      splits: records.Split objects to draw training pairs from.
      config: a TrainConfig.
      inputs: optional batch dict (image_a, image_b, label, identity_a,
        identity_b) to train on instead of build_inputs(splits, config).
      sync_replicas: None, or (replicas_to_aggregate, total_num_replicas) for
        synchronous cluster training: SyncReplicasOptimizer averages that many
        workers' gradients into one update (and applies the moving averages
        once an update); run its sync_optimizer.make_session_run_hook.
      data_service: a tf.data service dispatcher address for the input (build_inputs).
    Returns:
      A TrainGraph of tensors and ops.
    """
    tower_fn = nets_factory.network_fn_from_config(config.model_config(), config.weight_decay,
                                                   config.keep_probability)
    v1.set_random_seed(config.seed)
    global_step = v1.train.get_or_create_global_step()
    with tf.name_scope("inputs"):
        batch = inputs if inputs is not None else build_inputs(splits, config, data_service)
    image_a, image_b, labels = batch["image_a"], batch["image_b"], batch["label"]
    # with shared anchors pairs 2k and 2k+1 share one render of their anchor: one tower pass
    anchors = image_a[::2] if config.shared_anchors else image_a
    features_a, features_b = siamese.towers(anchors, image_b, tower_fn, True, config.l2_normalize)
    if config.shared_anchors:
        features_a = tf.repeat(features_a, 2, axis=0)
    if config.loss_pairs in ("all", "active"):
        all_dw = siamese.pairwise_distance(features_a, features_b, config.head, config.head_units,
                                           config.epsilon, config.weight_decay,
                                           head_identity=config.head_identity)
        dw = tf.linalg.diag_part(all_dw)  # the batch's own pairs, for the summaries
        loss = siamese.contrastive_loss_all_pairs(all_dw, batch["identity_a"], batch["identity_b"],
                                                  config.margin, active=config.loss_pairs == "active")
    else:
        dw = siamese.distance(features_a, features_b, config.head, config.head_units, config.epsilon,
                              config.weight_decay, head_identity=config.head_identity)
        loss = siamese.contrastive_loss(dw, labels, config.margin)
    decoupled = config.weight_decay_mode == "decoupled"
    regularization = v1.losses.get_regularization_losses()
    total_loss = loss + tf.add_n([loss * 0] + ([] if decoupled else regularization))
    if config.lr_schedule == "cyclic":
        # Adam's beta1_power variable starts from beta1, so its initializer reads the step.
        # Initializers run in parallel: on a cluster it could read global_step on the ps
        # before that exists ("Could not find variable global_step"). Step 0 until it does.
        step = v1.cond(v1.is_variable_initialized(global_step), global_step.read_value,
                       lambda: tf.zeros([], global_step.dtype))
        lr, beta1 = schedules.cyclic(step, config.cycle_steps, config.lr_min, config.lr_max,
                                     config.beta1_min, config.beta1_max)
    elif config.lr_schedule == "constant":
        lr, beta1 = schedules.constant(config.learning_rate, config.beta1_max)
    else:
        raise ArgumentError("lr_schedule", config.lr_schedule, "choose from cyclic, constant")
    optimizer = v1.train.AdamOptimizer(lr, beta1=beta1, beta2=schedules.BETA2)
    ema = siamese.moving_averages(config.moving_average_decay, global_step) if config.moving_average_decay else None
    sync_optimizer = None
    if sync_replicas:
        check_sync_replicas(config)
        optimizer = sync_optimizer = v1.train.SyncReplicasOptimizer(
            optimizer, replicas_to_aggregate=sync_replicas[0], total_num_replicas=sync_replicas[1],
            variable_averages=ema, variables_to_average=v1.trainable_variables() if ema else None)
    decay = decoupled_decay(regularization, lr) if decoupled else []
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS) + [d for _, d in decay]):
        train_op = optimizer.minimize(total_loss, global_step=global_step)
    if decay:  # AdamW: w_t = w_{t-1} - lr (adam_step + weight_decay w_{t-1}), decay read before the step
        with tf.control_dependencies([train_op]):
            train_op = tf.group(*[v.assign_sub(d) for v, d in decay])
    averaged = None
    if ema:
        if not sync_optimizer:  # SyncReplicasOptimizer applies them itself, once an update
            with tf.control_dependencies([train_op]):
                train_op = ema.apply(v1.trainable_variables())
        averaged = siamese.moving_average_getter(ema)
    same = tf.equal(labels, 0)
    for name, value in (("loss", loss), ("total_loss", total_loss), ("learning_rate", lr),
                        ("beta1", beta1),
                        ("distance/same", tf.reduce_mean(tf.boolean_mask(dw, same))),
                        ("distance/different", tf.reduce_mean(tf.boolean_mask(dw, tf.logical_not(same))))):
        v1.summary.scalar(name, value)
    v1.summary.image("pairs", pair_grid(image_a, image_b))
    v1.summary.text("pairs/label_and_distance", tf.strings.format(
        "labels {} distances {}", (labels[:SUMMARY_PAIRS], tf.round(dw[:SUMMARY_PAIRS] * 1000) / 1000)))
    return TrainGraph(global_step, image_a, image_b, labels, loss, total_loss, dw, lr, beta1, train_op,
                      tower_fn, averaged, sync_optimizer)


def check_sync_replicas(config):
    """ArgumentError for a config that synchronous replicas cannot train: with decoupled
    weight decay each worker's step would decay the shared weights again."""
    if config.weight_decay_mode == "decoupled" and config.weight_decay > 0:
        raise ArgumentError("weight_decay_mode", config.weight_decay_mode,
                            "not supported with synchronous replicas (each worker's step would decay the "
                            "shared weights again); use l2")


def decoupled_decay(regularization, lr):
    """[(variable, lr * d(regularization)/d(variable))] for AdamW's decoupled weight decay
    (Loshchilov and Hutter): the layers' regularization losses, weight_decay *
    l2_loss(w - centre), give each decayed weight's weight_decay * (w - centre)."""
    if not regularization:
        return []
    variables = v1.trainable_variables()
    grads = tf.gradients(tf.add_n(regularization), variables)
    return [(v, lr * g) for v, g in zip(variables, grads) if g is not None]


def build_validation_graph(split, tower_fn, config, custom_getter=None, num_pairs=2000):
    """A fixed set of held-out pairs and their distances, on the training graph's weights.

    Args:
      split: a records.Split to draw validation pairs from.
      tower_fn: the training graph's tower (TrainGraph.tower_fn).
      config: the TrainConfig (image size, crop, head).
      custom_getter: TrainGraph.averaged, to validate the moving averages
        (what inference restores) instead of the raw weights.
      num_pairs: pairs a validation (rounded down to whole batches of VAL_BATCH_SIZE).
    Returns:
      A ValidationGraph: an initializable iterator (re-run its initializer for
      the same pairs), distances [VAL_BATCH_SIZE], labels and batches a validation.
    """
    with tf.name_scope("validation"):
        ds = pairs.pair_dataset(split, VAL_BATCH_SIZE, config.image_size, config.crop, False,
                                seed=VAL_SEED)
        it = v1.data.make_initializable_iterator(ds)
        val = it.get_next()
        fa = siamese.tower(val["image_a"], tower_fn, False, config.l2_normalize, reuse=True,
                           custom_getter=custom_getter)
        fb = siamese.tower(val["image_b"], tower_fn, False, config.l2_normalize, reuse=True,
                           custom_getter=custom_getter)
        dw = siamese.distance(fa, fb, config.head, config.head_units, config.epsilon, reuse=True,
                              custom_getter=custom_getter)
    return ValidationGraph(it, dw, val["label"], max(1, num_pairs // VAL_BATCH_SIZE))


class ProgressHook(v1.train.SessionRunHook):
    """Logs step, loss, steps/s, pairs/s, learning rate, beta1 and ETA."""

    def __init__(self, graph, every, max_steps, batch_size):
        self.fetches = {"step": graph.global_step, "loss": graph.loss, "lr": graph.learning_rate,
                        "beta1": graph.beta1}
        self.every, self.max_steps, self.batch_size = every, max_steps, batch_size
        self.last = None
        self.losses = []  # (step, loss) of every progress line

    def before_run(self, run_context):
        return v1.train.SessionRunArgs(self.fetches)

    def after_run(self, run_context, run_values):
        r = run_values.results
        step, now = int(r["step"]), time.time()
        if self.last is None:
            self.last = (step, now)
            return
        if step - self.last[0] >= self.every:
            rate = (step - self.last[0]) / (now - self.last[1])
            eta = (self.max_steps - step) / rate
            logging.info("step %d  loss %.4f  %.2f steps/s  %.0f pairs/s  lr %.2e  beta1 %.3f  ETA %dm%02ds",
                         step, r["loss"], rate, rate * self.batch_size, r["lr"], r["beta1"],
                         eta // 60, eta % 60)
            self.losses.append((step, float(r["loss"])))
            self.last = (step, now)


class CountHook(v1.train.SessionRunHook):
    """Counts this process's steps (in a cluster, its share of the global steps)."""

    def __init__(self):
        self.steps = 0

    def after_run(self, run_context, run_values):
        self.steps += 1


class ValidationHook(v1.train.SessionRunHook):
    """Every n steps (and at the end): distances of a fixed set of held-out pairs,
    ROC AUC and mean same/different distances, to the log and TensorBoard."""

    def __init__(self, validation, every, train_dir, global_step):
        self.v, self.every, self.global_step = validation, every, global_step
        self.writer = v1.summary.FileWriterCache.get(train_dir)
        self.last_step = -1
        self.history = []

    def before_run(self, run_context):
        return v1.train.SessionRunArgs(self.global_step)

    def after_run(self, run_context, run_values):
        step = int(run_values.results) + 1
        if step % self.every == 0:
            self.validate(run_context.session, step)

    def end(self, session):
        step = int(session.run(self.global_step))
        if step != self.last_step:
            self.validate(session, step)

    def validate(self, session, step):
        start = time.time()
        session.run(self.v.iterator.initializer)  # the same pairs every time
        d, y = [], []
        for _ in range(self.v.num_batches):
            dist, lab = session.run([self.v.distance, self.v.labels])
            d.append(dist)
            y.append(lab)
        d, y = np.concatenate(d), np.concatenate(y)
        auc = metrics.roc_auc(d, y)
        acc, _ = metrics.best_accuracy(d, y)
        same, diff = float(d[y == 0].mean()), float(d[y == 1].mean())
        logging.info("validation at step %d: AUC %.4f  best accuracy %.4f  mean distance same %.3f "
                     "different %.3f (%d pairs, %.1f s)", step, auc, acc, same, diff, len(y),
                     time.time() - start)
        summary = v1.Summary(value=[
            v1.Summary.Value(tag="validation/auc", simple_value=auc),
            v1.Summary.Value(tag="validation/best_accuracy", simple_value=acc),
            v1.Summary.Value(tag="validation/distance_same", simple_value=same),
            v1.Summary.Value(tag="validation/distance_different", simple_value=diff)])
        self.writer.add_summary(summary, step)
        self.writer.flush()
        self.last_step = step
        self.history.append({"step": step, "auc": auc, "best_accuracy": acc})


def thread_ids():
    """This process's thread ids (Linux's /proc/self/task), or None where there is no /proc."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return None


def lower_priority(tids):
    """Puts these threads at idle CPU priority (Linux SCHED_IDLE: they run when a
    core would otherwise be idle); threads that have exited since are skipped."""
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:  # exited since it was listed
            pass


class InputPriorityHook(v1.train.SessionRunHook):
    """Runs the threads the input pipeline starts at idle CPU priority, so they take
    the cycles the training step leaves and never hold up its convolutions.

    tf.data's threads are the ones that appear once the session exists: they start
    with the first step's GetNext (the session's own pools exist before it). They
    are looked for after steps 1, 2, 4, ... 4096, which also finds the threads of
    iterators that start later (validation's). On 2 cores each of a step's oneDNN
    ops is split in two halves; an input thread at the same priority that shares a
    core with one half makes the other half wait, so the input costs the step about
    twice its own CPU time (README: Benchmarks).
    """

    LAST_CHECK = 4096

    def __init__(self):
        self.known, self.runs = None, 0
        self.lowered = set()  # the thread ids put at idle priority

    def after_create_session(self, session, coord):
        # Without /proc or SCHED_IDLE (not Linux) the hook does nothing.
        self.known = thread_ids() if hasattr(os, "SCHED_IDLE") else None

    def after_run(self, run_context, run_values):
        self.runs += 1
        if self.known is None or self.runs > self.LAST_CHECK or self.runs & (self.runs - 1):
            return
        now = thread_ids() or set()
        new = now - self.known
        self.known |= now
        if new:
            lower_priority(new)
            self.lowered |= new
            if self.runs == 1:
                logging.info("input threads at idle CPU priority: %d", len(new))


class StopHook(v1.train.SessionRunHook):
    """Requests a stop on SIGINT/SIGTERM or after max_minutes; the checkpoint
    saver then writes a final checkpoint as the session closes."""

    def __init__(self, max_minutes):
        self.deadline = time.time() + 60 * max_minutes if max_minutes > 0 else None
        self.signal = None

    def begin(self):
        # Until the first step has run there is nothing to save: SIGINT/SIGTERM keep
        # their default action and stop the process at once, even inside a long
        # graph build or first allocation, where a Python handler would wait.
        self.stepped = False

    def _handle(self, signum, frame):
        self.signal = signum

    def after_run(self, run_context, run_values):
        if not self.stepped:
            self.stepped = True
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handle)
        if self.signal is not None:
            logging.info("signal %d: saving a checkpoint and stopping", self.signal)
            run_context.request_stop()
        elif self.deadline and time.time() > self.deadline:
            logging.info("max_minutes reached: saving a checkpoint and stopping")
            run_context.request_stop()


def machine_memory():
    """Physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def session_config(config, base=None):
    """The training session's ConfigProto: base (a cluster worker's, or None) with
    grappler's auto_mixed_precision_onednn_bfloat16 rewrite turned on when
    config.mixed_precision is bfloat16 (TF's CPU counterpart of mixed_float16:
    variables, the optimizer and checkpoints stay float32)."""
    if resolved_precision(config.mixed_precision) == "none":
        return base
    # TF's list knob for the rewrite (read when the session optimizes the graph; a
    # value the user set wins): MatMul stays float32, so the embedding and the head,
    # |f_a - f_b| of unit vectors, keep their precision. With them in bfloat16 the
    # default run ended at validation AUC 0.821 against 0.874 in float32.
    os.environ.setdefault(AMP_ALLOWLIST_REMOVE, "MatMul")
    out = v1.ConfigProto()
    if base is not None:
        out.CopyFrom(base)
    out.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return out


def resolved_precision(mixed_precision, cpuinfo="/proc/cpuinfo"):
    """"auto" -> "bfloat16" where the CPU has bfloat16 arithmetic (native_bf16), else
    "none"; any other value as it is."""
    if mixed_precision != "auto":
        return mixed_precision
    return "bfloat16" if native_bf16(cpuinfo) else "none"


def native_bf16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU has bfloat16 arithmetic (BF16_CPU_FEATURES), False when not,
    None when cpuinfo cannot be read."""
    try:
        with open(cpuinfo) as f:
            words = set(f.read().split())
    except OSError:
        return None
    return any(flag in words for flag in BF16_CPU_FEATURES)


def _wait_for_chief(master, session_config, poll_seconds=0.5, max_wait_seconds=600):
    """A cluster worker waits here until the chief has initialized or restored the
    variables. (MonitoredTrainingSession's own wait checks every 30 seconds, longer
    than a short run lasts.)"""
    not_ready = v1.report_uninitialized_variables(v1.global_variables())
    deadline = time.time() + max_wait_seconds
    with v1.Session(master, config=session_config) as sess:
        while time.time() < deadline:
            if not len(sess.run(not_ready)):
                return
            time.sleep(poll_seconds)


def run_loop(graph, train_dir, hooks, max_steps, save_checkpoint_steps=500, save_summaries_steps=100,
             master="", is_chief=True, session_config=None):
    """The session loop: runs graph.train_op until a hook stops it (StopAtStepHook at max_steps).

    MonitoredTrainingSession initializes or restores from train_dir, checkpoints
    every save_checkpoint_steps and at the end, and writes summaries. TF errors
    propagate to the caller.
    """
    hooks = [v1.train.StopAtStepHook(last_step=max_steps),
             v1.train.NanTensorHook(graph.loss, fail_on_nan_loss=True)] + list(hooks)
    # The default saver's settings, plus relative paths in the `checkpoint` state
    # file, so that a train_dir can be moved or copied and still restores itself.
    saver = v1.train.Saver(sharded=True, allow_empty=True, save_relative_paths=True)
    # On a cluster a step that waits longer than the session's operation timeout on a
    # lost parameter server fails (DeadlineExceeded) instead of retrying forever.
    timeout = session_config.operation_timeout_in_ms if session_config is not None else 0
    step_options = v1.RunOptions(timeout_in_ms=timeout) if timeout else None
    if not is_chief:
        _wait_for_chief(master, session_config)
    with v1.train.MonitoredTrainingSession(
            master=master, is_chief=is_chief, checkpoint_dir=train_dir, hooks=hooks,
            scaffold=v1.train.Scaffold(saver=saver),
            save_checkpoint_steps=save_checkpoint_steps, save_checkpoint_secs=None,
            save_summaries_steps=save_summaries_steps, log_step_count_steps=0,
            # SyncReplicasOptimizer's chief queue runner stays blocked on the last
            # gradients after the final checkpoint: give threads 5 s, not 120.
            stop_grace_period_secs=5, config=session_config) as sess:
        logging.info("training from step %d to %d", sess.run(graph.global_step), max_steps)
        while not sess.should_stop():
            sess.run(graph.train_op, options=step_options)
