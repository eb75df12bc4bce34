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

from siamese_graph.model import layers

BLOCKS = (6, 12, 24, 16)
MIN_IMAGE_SIZE = 32  # the stem divides by 4 and three transitions by 8


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
