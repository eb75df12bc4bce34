r"""Trains a siamese network in the TF1 graph style.

  python -m siamese_graph.train --flagfile=train.flags
  python -m siamese_graph.train --flagfile=configs/densenet121.flags --train_dir=runs/dn

Writes into --train_dir: checkpoints (model.ckpt-N), TensorBoard events (loss,
learning rate, beta1, same/different distances, sample pairs, validation AUC),
flags.txt (every flag, loadable with --flagfile), model.json (what inference
needs: net, head, image size, crop...; plus the code revision when known).
A rerun with the same --train_dir resumes at the saved step. SIGINT/SIGTERM
save a checkpoint and exit cleanly.
"""
import json
import os
import signal
import subprocess
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from siamese_graph import metrics, pairs, preprocessing, schedules, siamese
from siamese_graph.cli import define, run_main
from siamese_graph.errors import UserError
from siamese_graph.nets import nets_factory

v1 = tf.compat.v1
pairs.define_flags()
# Where
define("string", "train_dir", None, "Checkpoints, events, flags.txt and model.json go here.")
flags.DEFINE_string("split", "train", "Split of --records_dir to train on.")
flags.DEFINE_string("val_records_dir", None, "Records for validation; default: the first --records_dir.")
flags.DEFINE_string("val_split", "auto", "Split to validate on: auto (val if present, else test), none, or a name.")
# Model
define("enum", "net", "convnet", "Tower.", enum_values=sorted(nets_factory.NETS))
define("enum", "head", "absdiff", "absdiff: |f_a - f_b| -> dense; euclidean: ||f_a - f_b||.",
       enum_values=list(siamese.HEADS))
flags.DEFINE_integer("head_units", 128, "absdiff head: units of the dense layer.")
flags.DEFINE_bool("l2_normalize", True, "L2-normalize tower features (fixes the margin's scale).")
flags.DEFINE_float("convnet_width", 1.0, "convnet: filter multiplier (1: 16-32-64-128, 2: 32-64-128-256).")
flags.DEFINE_integer("convnet_embedding", 0, "convnet: a linear dense embedding of this size on top (0: the 1024 features).")
flags.DEFINE_integer("embedding_size", 32, "densenet121: size of the final embedding.")
flags.DEFINE_integer("growth_rate", 32, "densenet121: growth rate k.")
flags.DEFINE_float("theta", 0.5, "densenet121: compression factor in (0, 1].")
flags.DEFINE_float("margin", 1.0, "Contrastive-loss margin m (> 0).")
flags.DEFINE_float("epsilon", 1e-6, "Added under the square root of the distance.")
flags.DEFINE_float("weight_decay", 0.0, "L2 weight decay (0: none).")
flags.DEFINE_enum("loss_pairs", "given", ["given", "all"], "given: the contrastive loss over the batch's "
                  "pairs; all: over every (image_a[i], image_b[j]) pair of the batch, labelled by "
                  "identity, same and different pairs averaged apart (siamese.contrastive_loss_all_pairs).")
flags.DEFINE_float("moving_average_decay", 0.0, "Keep an exponential moving average of the weights "
                   "with this decay (FaceNet/TF-Slim style; e.g. 0.999) for validation and "
                   "inference; 0: off.")
# Optimisation
flags.DEFINE_integer("batch_size", 64, "Pairs per step (even: half same, half different).")
flags.DEFINE_integer("max_steps", 6000, "Stop at this global step.")
flags.DEFINE_float("max_minutes", 0, "Also stop after this many minutes of this run (0: no limit).")
flags.DEFINE_enum("lr_schedule", "cyclic", ["cyclic", "constant"], "Learning-rate schedule.")
flags.DEFINE_float("learning_rate", 1e-3, "constant schedule: the learning rate.")
flags.DEFINE_float("lr_min", 1e-4, "cyclic: lowest learning rate.")
flags.DEFINE_float("lr_max", 1e-3, "cyclic: highest learning rate.")
flags.DEFINE_float("beta1_min", 0.85, "cyclic: lowest Adam beta1 (at the highest learning rate).")
flags.DEFINE_float("beta1_max", 0.95, "cyclic: highest Adam beta1; the constant schedule's beta1.")
flags.DEFINE_integer("cycle_steps", 2000, "cyclic: steps in one cycle.")
# Bookkeeping
flags.DEFINE_integer("save_checkpoint_steps", 500, "Checkpoint every this many steps.")
flags.DEFINE_integer("save_summaries_steps", 100, "TensorBoard summaries every this many steps.")
flags.DEFINE_integer("log_every_n_steps", 50, "Progress line every this many steps.")
flags.DEFINE_integer("validate_every_n_steps", 1000, "Validation every this many steps (0: never).")
flags.DEFINE_integer("val_pairs", 2000, "Pairs in each validation.")
FLAGS = flags.FLAGS

MODEL_FILE = "model.json"
MODEL_KEYS = ("net", "head", "head_units", "l2_normalize", "convnet_width", "convnet_embedding",
              "embedding_size", "growth_rate", "theta", "epsilon", "image_size", "crop",
              "moving_average_decay")


def model_config():
    """What inference needs to rebuild the network; saved as train_dir/model.json."""
    return {k: FLAGS[k].value for k in MODEL_KEYS}


def check_flags():
    if not FLAGS.records_dir:
        raise UserError("--records_dir is required")
    if not FLAGS.train_dir:
        raise UserError("--train_dir is required")
    if FLAGS.margin <= 0:
        raise UserError("--margin=%g: must be > 0" % FLAGS.margin)
    if FLAGS.epsilon <= 0:
        raise UserError("--epsilon=%g: must be > 0" % FLAGS.epsilon)
    if not 0 <= FLAGS.moving_average_decay < 1:
        raise UserError("--moving_average_decay=%g: must be in [0, 1)" % FLAGS.moving_average_decay)
    if FLAGS.max_steps < 1:
        raise UserError("--max_steps must be at least 1")
    preprocessing.parse_crop(FLAGS.crop)


def code_revision():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_train_dir(train_dir, config):
    """Checks a resumed train_dir holds the same model; writes flags.txt and model.json."""
    os.makedirs(train_dir, exist_ok=True)
    path = os.path.join(train_dir, MODEL_FILE)
    if tf.train.latest_checkpoint(train_dir):
        saved = None
        if os.path.exists(path):
            with open(path) as f:
                saved_all = json.load(f)
            saved = {k: saved_all.get(k) for k in MODEL_KEYS}
        if saved != config:
            diff = ", ".join("--%s=%s (saved: %s)" % (k, config[k], (saved or {}).get(k))
                             for k in MODEL_KEYS if (saved or {}).get(k) != config[k])
            raise UserError("%s holds a checkpoint of another model: %s; use another --train_dir, "
                            "or delete that one to start fresh" % (train_dir, diff))
    record = dict(config, revision=code_revision())
    for name, text in ((MODEL_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n"),
                       ("flags.txt", FLAGS.flags_into_string())):
        tmp = os.path.join(train_dir, "." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(train_dir, name))


def build_inputs(records_dirs, split, augment, seed):
    """(image_a, image_b, label, identity_a, identity_b) batches; several record folders
    alternate batch by batch (a batch's identities all come from one folder)."""
    datasets = [pairs.pair_dataset(d, split, FLAGS.batch_size, FLAGS.image_size, FLAGS.crop, augment,
                                   seed + 1000 * i, shuffle_buffer=FLAGS.shuffle_buffer,
                                   rotation_deg=FLAGS.rotation_deg)
                for i, d in enumerate(records_dirs)]
    ds = datasets[0] if len(datasets) == 1 else tf.data.Dataset.choose_from_datasets(
        datasets, tf.data.Dataset.range(len(datasets)).repeat())
    batch = v1.data.make_one_shot_iterator(ds).get_next()
    return batch["image_a"], batch["image_b"], batch["label"], batch["identity_a"], batch["identity_b"]


def pair_grid(image_a, image_b, n=6):
    """[1, n*S, 2*S, 3] picture of the first n pairs for TensorBoard."""
    def to_unit(x):
        lo = tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)
        hi = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
        return (x - lo) / (hi - lo + 1e-6)
    rows = tf.concat([to_unit(image_a[:n]), to_unit(image_b[:n])], axis=2)
    return tf.reshape(rows, [1, -1, rows.shape[2], 3])


class ProgressHook(v1.train.SessionRunHook):
    """Logs step, loss, steps/s, pairs/s, learning rate, beta1 and ETA."""

    def __init__(self, fetches, every, max_steps, batch_size):
        self.fetches, self.every, self.max_steps, self.batch_size = fetches, every, max_steps, batch_size
        self.last = None

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
            self.last = (step, now)


class ValidationHook(v1.train.SessionRunHook):
    """Every n steps (and at the end): distances of a fixed set of held-out pairs,
    ROC AUC and mean same/different distances, to the log and TensorBoard."""

    def __init__(self, every, iterator, distance, labels, num_batches, train_dir, global_step):
        self.every, self.iterator, self.distance, self.labels = every, iterator, distance, labels
        self.num_batches, self.global_step = num_batches, global_step
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
        session.run(self.iterator.initializer)  # the same pairs every time
        d, y = [], []
        for _ in range(self.num_batches):
            dist, lab = session.run([self.distance, self.labels])
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


class StopHook(v1.train.SessionRunHook):
    """Requests a stop on SIGINT/SIGTERM or after max_minutes; the checkpoint
    saver then writes a final checkpoint as the session closes."""

    def __init__(self, max_minutes):
        self.deadline = time.time() + 60 * max_minutes if max_minutes > 0 else None
        self.signal = None

    def begin(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signal = signum

    def after_run(self, run_context, run_values):
        if self.signal is not None:
            logging.info("signal %d: saving a checkpoint and stopping", self.signal)
            run_context.request_stop()
        elif self.deadline and time.time() > self.deadline:
            logging.info("--max_minutes reached: saving a checkpoint and stopping")
            run_context.request_stop()


def resolve_val_split(records_dir, split):
    if split == "none":
        return None
    manifest_splits = pairs.records.load_manifest(records_dir)["splits"]
    if split == "auto":
        return next((s for s in ("val", "test") if s in manifest_splits), None)
    return split


def train():
    """Builds the graph and runs the loop; returns the validation history."""
    check_flags()
    records_dirs = FLAGS.records_dir.split(",")
    config = model_config()
    tower_fn = nets_factory.get_network_fn(FLAGS.net, FLAGS.image_size, FLAGS.weight_decay,
                                           growth_rate=FLAGS.growth_rate, theta=FLAGS.theta,
                                           embedding_size=FLAGS.embedding_size,
                                           convnet_width=FLAGS.convnet_width,
                                           convnet_embedding=FLAGS.convnet_embedding)
    for d in records_dirs:
        pairs.SplitInfo(d, FLAGS.split)  # fails early, in one line, on bad records
    val_dir = FLAGS.val_records_dir or records_dirs[0]
    val_split = resolve_val_split(val_dir, FLAGS.val_split) if FLAGS.validate_every_n_steps else None
    prepare_train_dir(FLAGS.train_dir, config)
    v1.set_random_seed(FLAGS.seed)
    global_step = v1.train.get_or_create_global_step()
    with tf.name_scope("inputs"):
        image_a, image_b, labels, identity_a, identity_b = build_inputs(records_dirs, FLAGS.split,
                                                                        FLAGS.augment, FLAGS.seed)
    features_a, features_b = siamese.towers(image_a, image_b, tower_fn, True, FLAGS.l2_normalize)
    if FLAGS.loss_pairs == "all":
        all_dw = siamese.pairwise_distance(features_a, features_b, FLAGS.head, FLAGS.head_units,
                                           FLAGS.epsilon, FLAGS.weight_decay)
        dw = tf.linalg.diag_part(all_dw)  # the batch's own pairs, for the summaries
        loss = siamese.contrastive_loss_all_pairs(all_dw, identity_a, identity_b, FLAGS.margin)
    else:
        dw = siamese.distance(features_a, features_b, FLAGS.head, FLAGS.head_units, FLAGS.epsilon,
                              FLAGS.weight_decay)
        loss = siamese.contrastive_loss(dw, labels, FLAGS.margin)
    total_loss = loss + tf.add_n([loss * 0] + v1.losses.get_regularization_losses())
    if FLAGS.lr_schedule == "cyclic":
        lr, beta1 = schedules.cyclic(global_step, FLAGS.cycle_steps, FLAGS.lr_min, FLAGS.lr_max,
                                     FLAGS.beta1_min, FLAGS.beta1_max)
    else:
        lr, beta1 = schedules.constant(FLAGS.learning_rate, FLAGS.beta1_max)
    optimizer = v1.train.AdamOptimizer(lr, beta1=beta1, beta2=schedules.BETA2)
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
        train_op = optimizer.minimize(total_loss, global_step=global_step)
    averaged = None
    if FLAGS.moving_average_decay:
        ema = siamese.moving_averages(FLAGS.moving_average_decay, global_step)
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
        "labels {} distances {}", (labels[:6], tf.round(dw[:6] * 1000) / 1000)))

    hooks = [ProgressHook({"step": global_step, "loss": loss, "lr": lr, "beta1": beta1},
                          FLAGS.log_every_n_steps, FLAGS.max_steps, FLAGS.batch_size),
             v1.train.StopAtStepHook(last_step=FLAGS.max_steps),
             v1.train.NanTensorHook(loss, fail_on_nan_loss=True),
             StopHook(FLAGS.max_minutes)]
    validation = None
    if val_split:
        with tf.name_scope("validation"):
            ds = pairs.pair_dataset(val_dir, val_split, 100, FLAGS.image_size, FLAGS.crop, False,
                                    seed=12345)
            it = v1.data.make_initializable_iterator(ds)
            val = it.get_next()
            # validates what inference restores: the moving averages when kept
            fa = siamese.tower(val["image_a"], tower_fn, False, FLAGS.l2_normalize, reuse=True,
                               custom_getter=averaged)
            fb = siamese.tower(val["image_b"], tower_fn, False, FLAGS.l2_normalize, reuse=True,
                               custom_getter=averaged)
            val_dw = siamese.distance(fa, fb, FLAGS.head, FLAGS.head_units, FLAGS.epsilon, reuse=True,
                                      custom_getter=averaged)
        validation = ValidationHook(FLAGS.validate_every_n_steps, it, val_dw, val["label"],
                                    max(1, FLAGS.val_pairs // 100), FLAGS.train_dir, global_step)
        hooks.append(validation)
        logging.info("validating on %s split '%s' every %d steps", val_dir, val_split,
                     FLAGS.validate_every_n_steps)
    start = time.time()
    try:
        with v1.train.MonitoredTrainingSession(
                checkpoint_dir=FLAGS.train_dir, hooks=hooks,
                save_checkpoint_steps=FLAGS.save_checkpoint_steps, save_checkpoint_secs=None,
                save_summaries_steps=FLAGS.save_summaries_steps, log_step_count_steps=0) as sess:
            logging.info("training %s/%s from step %d to %d", FLAGS.net, FLAGS.head,
                         sess.run(global_step), FLAGS.max_steps)
            while not sess.should_stop():
                sess.run(train_op)
    except v1.train.NanLossDuringTrainingError:
        raise UserError("the loss became NaN; lower the learning rate (--lr_max or --learning_rate) "
                        "or raise --epsilon; the last good checkpoint is in %s" % FLAGS.train_dir)
    except tf.errors.DataLossError as e:
        raise pairs.SplitInfo(records_dirs[0], FLAGS.split).data_loss_error(e)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
        if "checkpoint" in str(e).lower() or "Restoring" in str(e):
            raise UserError("%s: its checkpoint does not match this model (%s); use another "
                            "--train_dir or delete it to start fresh"
                            % (FLAGS.train_dir, str(e).splitlines()[0][:150]))
        raise
    logging.info("done in %.1f minutes; checkpoint %s", (time.time() - start) / 60,
                 tf.train.latest_checkpoint(FLAGS.train_dir))
    return validation.history if validation else []


def main(argv):
    del argv
    v1.disable_eager_execution()
    v1.logging.set_verbosity(v1.logging.ERROR)  # v1 deprecation chatter; absl logging stays on
    logging.set_verbosity(logging.INFO)
    train()


if __name__ == "__main__":
    app.run(run_main(main))
