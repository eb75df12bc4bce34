"""The training graph, the validation graph and the session loop, from plain arguments.

    graph = graphs.build_training_graph(splits, config)        # tensors
    val = graphs.build_validation_graph(val_split, graph.tower_fn, config, graph.averaged)
    loop.run_loop(graph, train_dir, hooks, ...)               # MonitoredTrainingSession

`train` (the command) turns flags into a TrainConfig, checks the train_dir and
calls these; any other way of running training (a cluster) builds the same
graph with build_training_graph and only runs it differently. Nothing here
reads flags.
"""
import collections
import functools

import tensorflow as tf

from siamese_graph.data import pairs, records
from siamese_graph.errors import ArgumentError
from siamese_graph.model import schedules, siamese
from siamese_graph.model.nets import nets_factory
from siamese_graph.training import teacher

v1 = tf.compat.v1


# Validation pairs: drawn in batches of this size from a pair graph with this
# fixed seed, so every validation of a run scores the same pairs.
VAL_BATCH_SIZE = 100


VAL_SEED = 12345


# Each records folder's pair graph is seeded seed + RECORDS_SEED_STRIDE * its index.
RECORDS_SEED_STRIDE = 1000


# Pairs shown in TensorBoard's image and text summaries.
SUMMARY_PAIRS = 6


TrainGraph = collections.namedtuple("TrainGraph", [
    "global_step", "image_a", "image_b", "labels", "loss", "total_loss", "distance",
    "learning_rate", "beta1", "train_op", "tower_fn", "averaged", "sync_optimizer"])


TrainGraph.__doc__ = """What build_training_graph returns: the tensors a session loop runs.

averaged is a variable_scope custom getter that reads the weights' moving
averages (None without them); tower_fn builds the tower for other graphs."""


ValidationGraph = collections.namedtuple("ValidationGraph", ["iterator", "distance", "labels",
                                                             "num_batches"])


def input_dataset(splits, config, data_service=None, counter=None, classes=None, teachers=None):
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
      counter: an int64 variable that counts every record read (inspect_pairs), or None.
      classes: with the identity loss, records.identity_classes' tables for splits
        (None: read here).
      teachers: with --distill_from, teacher.tables' tables for splits (None: computed here).
    Returns:
      A tf.data.Dataset of batch dicts (see pairs.pair_dataset), with class_a and
      class_b (with_classes) when config.identity_loss_weight > 0, and teacher_a,
      teacher_b, known_a, known_b (with_teacher) when config.distills.
    """
    datasets = [pairs.pair_dataset(s, config.batch_size, config.image_size, config.crop, config.augment,
                                   config.seed + RECORDS_SEED_STRIDE * i,
                                   shuffle_buffer=config.shuffle_buffer, rotation_deg=config.rotation_deg,
                                   gray_prob=config.gray_prob, lowres_prob=config.lowres_prob,
                                   border_prob=config.border_prob,
                                   scale_jitter=config.scale_jitter,
                                   service_shard=bool(data_service), cache=config.cache, counter=counter)
                for i, s in enumerate(splits)]
    if config.identity_loss_weight > 0:  # each batch's people as classes across the folders
        tables = classes or records.identity_classes(splits, config.identity_loss_min_photos)[0]
        datasets = [ds.map(functools.partial(with_classes, table=tf.constant(t))) for ds, t in zip(datasets, tables)]
    if config.distills:
        teachers = teachers or teacher.tables(splits, config.distill_from)
        datasets = [ds.map(functools.partial(with_teacher, table=t)) for ds, t in zip(datasets, teachers)]
    ds = datasets[0] if len(datasets) == 1 else tf.data.Dataset.choose_from_datasets(
        datasets, tf.data.Dataset.range(len(datasets)).repeat())
    if data_service:
        service = tf.data.experimental.service
        address, job_name = data_service
        ds = ds.apply(service.distribute(processing_mode=service.ShardingPolicy.HINT, service=address,
                                         job_name=job_name)).prefetch(2)
    return ds


def with_classes(batch, table):
    """A batch dict with class_a and class_b: the identity-loss class of each photo
    (table: its folder's identity index -> class, records.identity_classes)."""
    batch = dict(batch)
    batch["class_a"] = tf.gather(table, batch["identity_a"])
    batch["class_b"] = tf.gather(table, batch["identity_b"])
    return batch


def with_teacher(batch, table):
    """A batch dict with the teacher's features of each photo (teacher_a, teacher_b)
    and whether it has them (known_a, known_b); table: its split's (keys, features)."""
    batch = dict(batch)
    for side in ("a", "b"):
        batch["teacher_" + side], batch["known_" + side] = teacher.lookup(batch["filename_" + side], *table)
    return batch


def build_inputs(splits, config, data_service=None, classes=None, teachers=None):
    """The next batch of input_dataset (a dict of batch tensors), from a one-shot iterator."""
    return v1.data.make_one_shot_iterator(input_dataset(splits, config, data_service, classes=classes,
                                                        teachers=teachers)).get_next()


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
    (the batch's pairs, or every (a_i, b_j) pair with loss_pairs="all"), plus
    the identity loss on the towers' features (identity_loss_weight > 0) ->
    Adam on the learning-rate/beta1 schedule -> moving averages -> summaries.

    Args:
      splits: records.Split objects to draw training pairs from.
      config: a TrainConfig.
      inputs: optional batch dict (image_a, image_b, label, identity_a,
        identity_b; class_a and class_b with the identity loss) to train on
        instead of build_inputs(splits, config).
      sync_replicas: None, or (replicas_to_aggregate, total_num_replicas) for
        synchronous cluster training: SyncReplicasOptimizer averages that many
        workers' gradients into one update (and applies the moving averages
        once an update); run its sync_optimizer.make_session_run_hook.
      data_service: a tf.data service dispatcher address for the input (build_inputs).
    Returns:
      A TrainGraph of tensors and ops.
    """
    tower_fn = nets_factory.network_fn_from_config(config.model_config(), config.weight_decay)
    v1.set_random_seed(config.seed)
    global_step = v1.train.get_or_create_global_step()
    with tf.name_scope("inputs"):
        tables, num_classes = (records.identity_classes(splits, config.identity_loss_min_photos)
                               if config.identity_loss_weight > 0 else (None, 0))
        batch = inputs if inputs is not None else build_inputs(splits, config, data_service, tables)
    if config.distills and "teacher_a" not in batch:
        raise ValueError("distill_from needs inputs with teacher_a/teacher_b (graphs.with_teacher)")
    image_a, image_b, labels = batch["image_a"], batch["image_b"], batch["label"]
    features_a, features_b = siamese.towers(image_a, image_b, tower_fn, True, config.l2_normalize)
    if config.loss_pairs in ("all", "active"):
        all_dw = siamese.pairwise_distance(features_a, features_b, config.head, config.head_units,
                                           config.epsilon, config.weight_decay)
        dw = tf.linalg.diag_part(all_dw)  # the batch's own pairs, for the summaries
        loss = siamese.contrastive_loss_all_pairs(all_dw, batch["identity_a"], batch["identity_b"],
                                                  config.margin, active=config.loss_pairs == "active")
    else:
        dw = siamese.distance(features_a, features_b, config.head, config.head_units, config.epsilon,
                              config.weight_decay)
        loss = siamese.contrastive_loss(dw, labels, config.margin)
    if config.identity_loss_weight > 0:
        identity_loss = siamese.cosine_margin_loss(
            tf.concat([features_a, features_b], 0), tf.concat([batch["class_a"], batch["class_b"]], 0),
            num_classes, config.identity_loss_scale, config.identity_loss_margin)
        identity_loss = tf.identity(identity_loss, name="identity_loss_value")
        v1.summary.scalar("identity_loss", identity_loss)
        loss = loss + config.identity_loss_weight * identity_loss
    if config.distills:
        dims = features_a.shape[-1], batch["teacher_a"].shape[-1]
        if dims[0] != dims[1]:
            raise ArgumentError("distill_from", config.distill_from, "its features have %s dimensions, this "
                                "net's %s: train a net of the teacher's size" % (dims[1], dims[0]))
        distill = siamese.distillation_loss(
            tf.concat([features_a, features_b], 0), tf.concat([batch["teacher_a"], batch["teacher_b"]], 0),
            tf.concat([batch["known_a"], batch["known_b"]], 0))
        distill = tf.identity(distill, name="distillation_loss_value")
        v1.summary.scalar("distillation_loss", distill)
        loss = loss + config.distill_weight * distill
    total_loss = loss + tf.add_n([loss * 0] + v1.losses.get_regularization_losses())
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
        optimizer = sync_optimizer = v1.train.SyncReplicasOptimizer(
            optimizer, replicas_to_aggregate=sync_replicas[0], total_num_replicas=sync_replicas[1],
            variable_averages=ema, variables_to_average=siamese.model_variables() if ema else None)
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
        train_op = optimizer.minimize(total_loss, global_step=global_step)
    averaged = None
    if ema:
        if not sync_optimizer:  # SyncReplicasOptimizer applies them itself, once an update
            with tf.control_dependencies([train_op]):
                train_op = ema.apply(siamese.model_variables())
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
