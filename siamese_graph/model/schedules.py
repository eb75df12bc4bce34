"""Learning-rate and Adam beta1 schedules as tensors of the global step.

cyclic (the first article, after fast.ai's super-convergence): over each cycle
of cycle_steps the learning rate rises linearly from lr_min to lr_max and falls
back, while beta1 falls from beta1_max to beta1_min and rises back: opposite
directions. constant: learning_rate and beta1_max throughout. beta2 stays 0.99.
"""
import tensorflow as tf

from siamese_graph.errors import ArgumentError

BETA2 = 0.99


def cyclic(global_step, cycle_steps, lr_min, lr_max, beta1_min, beta1_max):
    """Returns (learning_rate, beta1) float32 scalars for the step."""
    if cycle_steps < 2:
        raise ArgumentError("cycle_steps", cycle_steps, "a cycle needs at least 2 steps")
    if not 0 < lr_min <= lr_max:
        raise ArgumentError("lr_min", lr_min, "needs 0 < lr_min <= lr_max (lr_max=%g)" % lr_max)
    if not 0 <= beta1_min <= beta1_max < 1:
        raise ArgumentError("beta1_min", beta1_min, "needs 0 <= beta1_min <= beta1_max < 1 "
                            "(beta1_max=%g)" % beta1_max)
    step = tf.cast(global_step, tf.float32)
    phase = tf.math.floormod(step, float(cycle_steps)) / float(cycle_steps)  # [0, 1)
    up = 1.0 - tf.abs(2.0 * phase - 1.0)  # 0 -> 1 -> 0 over a cycle
    return lr_min + (lr_max - lr_min) * up, beta1_max - (beta1_max - beta1_min) * up


def constant(learning_rate, beta1):
    if learning_rate <= 0:
        raise ArgumentError("learning_rate", learning_rate, "must be > 0")
    if not 0 <= beta1 < 1:
        raise ArgumentError("beta1_max", beta1, "must be in [0, 1)")
    return tf.constant(learning_rate, tf.float32), tf.constant(beta1, tf.float32)
