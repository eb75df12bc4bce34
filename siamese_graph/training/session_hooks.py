"""The session hooks of a training run: progress, validation, input priority, stop.
"""
import os
import signal
import time

import numpy as np
import tensorflow as tf
from absl import logging

from siamese_graph.inference import metrics

v1 = tf.compat.v1


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
