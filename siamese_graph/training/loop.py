"""The session loop (MonitoredTrainingSession), its ConfigProto and the precision it runs in.
"""
import os
import time

import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import rewriter_config_pb2

v1 = tf.compat.v1


# CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic; without them oneDNN emulates it
BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")


AMP_ALLOWLIST_REMOVE = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE"


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
