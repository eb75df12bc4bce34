"""Low-level layers on tf.compat.v1.get_variable and tf.nn (no Keras in the graph).

All take and return NHWC (or [batch, units]) float32 tensors and create their
variables in the current variable_scope, so a tower built twice under one scope
with reuse shares every weight. Weight-decay losses go to REGULARIZATION_LOSSES
when weight_decay > 0.
"""
import tensorflow as tf

v1 = tf.compat.v1


def _weights(name, shape, weight_decay):
    """He-initialised weights, decayed towards zero (weight_decay * l2_loss(w))."""
    init = v1.variance_scaling_initializer(scale=2.0, mode="fan_in", distribution="truncated_normal")
    reg = (lambda w: weight_decay * tf.nn.l2_loss(w)) if weight_decay > 0 else None
    return v1.get_variable(name, shape, tf.float32, initializer=init, regularizer=reg)


def conv2d(x, filters, kernel=3, stride=1, scope="conv", use_bias=False, weight_decay=0.0):
    """[B, H, W, C] -> [B, H/stride, W/stride, filters], SAME padding."""
    with v1.variable_scope(scope):
        w = _weights("weights", [kernel, kernel, x.shape[-1], filters], weight_decay)
        y = tf.nn.conv2d(x, w, strides=stride, padding="SAME")
        if use_bias:
            y = tf.nn.bias_add(y, v1.get_variable("biases", [filters], initializer=v1.zeros_initializer()))
        return y


def dense(x, units, scope="dense", use_bias=True, weight_decay=0.0):
    """[B, N] -> [B, units], no activation."""
    with v1.variable_scope(scope):
        w = _weights("weights", [x.shape[-1], units], weight_decay)
        y = tf.matmul(x, w)
        if use_bias:
            y = tf.nn.bias_add(y, v1.get_variable("biases", [units], initializer=v1.zeros_initializer()))
        return y


def batch_norm(x, training, scope="bn", decay=0.99, epsilon=1e-3):
    """Batch norm over [B, H, W, C] or [B, C].

    training (a Python bool): batch statistics, and ops that update the moving
    mean and variance go to tf.compat.v1.GraphKeys.UPDATE_OPS (run them with
    the train op); otherwise the moving statistics are used.
    """
    flat = x.shape.ndims == 2
    if flat:
        x = x[:, tf.newaxis, tf.newaxis, :]
    channels = x.shape[-1]
    with v1.variable_scope(scope):
        gamma = v1.get_variable("gamma", [channels], initializer=v1.ones_initializer())
        beta = v1.get_variable("beta", [channels], initializer=v1.zeros_initializer())
        collections = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
        moving_mean = v1.get_variable("moving_mean", [channels], initializer=v1.zeros_initializer(),
                                      trainable=False, collections=collections)
        moving_var = v1.get_variable("moving_variance", [channels], initializer=v1.ones_initializer(),
                                     trainable=False, collections=collections)
        if training:
            y, mean, var = v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)
            for v, value in ((moving_mean, mean), (moving_var, var)):
                v1.add_to_collection(v1.GraphKeys.UPDATE_OPS,
                                     v1.assign_sub(v, (1 - decay) * (v - value)))
        else:
            y, _, _ = v1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean, variance=moving_var,
                                             epsilon=epsilon, is_training=False)
    return y[:, 0, 0, :] if flat else y


def max_pool(x, size=2, stride=2):
    return tf.nn.max_pool2d(x, size, stride, "SAME")


def avg_pool(x, size=2, stride=2):
    return tf.nn.avg_pool2d(x, size, stride, "SAME")


def flatten(x):
    return tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
