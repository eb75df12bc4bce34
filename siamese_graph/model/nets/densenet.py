"""The first article's tower: DenseNet-121 with a small embedding in place of the classifier.

Stem: 7x7/2 conv (2k filters), BN, ReLU, 3x3/2 max pool. Dense blocks of
6, 12, 24, 16 units; a unit is BN-ReLU-1x1 conv (4k filters, the bottleneck)
then BN-ReLU-3x3 conv (k filters, k = growth rate), and its output is
concatenated to everything before it in the block. Between blocks a transition:
BN, 1x1 conv to floor(theta * channels), 2x2 average pool (theta in (0, 1] is
the compression factor). Then BN, ReLU, global average pool and a dense layer
to the embedding (32 by default, the article's size).
"""
import tensorflow as tf

from siamese_graph.errors import ArgumentError
from siamese_graph.model import layers

BLOCKS = (6, 12, 24, 16)
MIN_IMAGE_SIZE = 32  # the stem divides by 4 and three transitions by 8
SIZE_MULTIPLE = 32
# The options of this net: flags of train of the same name, saved in model.json.
OPTIONS = {
    "embedding_size": (32, "densenet121: size of the final embedding."),
    "growth_rate": (32, "densenet121: growth rate k."),
    "theta": (0.5, "densenet121: compression factor in (0, 1]."),
}


def _bn_relu_conv(x, filters, kernel, training, scope, weight_decay):
    with tf.compat.v1.variable_scope(scope):
        x = tf.nn.relu(layers.batch_norm(x, training))
        return layers.conv2d(x, filters, kernel, weight_decay=weight_decay)


def densenet121(images, training, growth_rate=32, theta=0.5, embedding_size=32, weight_decay=0.0,
                blocks=BLOCKS):
    """[B, S, S, 3] float -> [B, embedding_size] float."""
    k = growth_rate
    x = layers.conv2d(images, 2 * k, 7, stride=2, scope="stem", weight_decay=weight_decay)
    x = tf.nn.relu(layers.batch_norm(x, training, scope="stem_bn"))
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    for b, units in enumerate(blocks):
        with tf.compat.v1.variable_scope("block%d" % (b + 1)):
            for u in range(units):
                with tf.compat.v1.variable_scope("unit%d" % (u + 1)):
                    y = _bn_relu_conv(x, 4 * k, 1, training, "bottleneck", weight_decay)
                    y = _bn_relu_conv(y, k, 3, training, "conv", weight_decay)
                x = tf.concat([x, y], axis=3)
        if b < len(blocks) - 1:
            with tf.compat.v1.variable_scope("transition%d" % (b + 1)):
                x = _bn_relu_conv(x, max(1, int(theta * x.shape[-1])), 1, training, "compress",
                                  weight_decay)
                x = layers.avg_pool(x)
    x = tf.nn.relu(layers.batch_norm(x, training, scope="final_bn"))
    x = tf.reduce_mean(x, axis=[1, 2])
    return layers.dense(x, embedding_size, scope="embedding", weight_decay=weight_decay)


def check_options(growth_rate, theta, embedding_size):
    """ArgumentError for options no DenseNet can be built with."""
    if not 0 < theta <= 1:
        raise ArgumentError("theta", theta, "the compression factor must be in (0, 1]")
    for name, value in (("growth_rate", growth_rate), ("embedding_size", embedding_size)):
        if value < 1:
            raise ArgumentError(name, value, "must be at least 1")


def build(images, training, weight_decay=0.0, growth_rate=32, theta=0.5, embedding_size=32):
    """The registry's entry (nets_factory): densenet121 with its OPTIONS by name."""
    return densenet121(images, training, growth_rate, theta, embedding_size, weight_decay)
