"""The second article's tower: stacked conv blocks ending in a flattened 1024-unit vector.

Four blocks of (3x3 conv, batch norm, ReLU, 2x2 max pool) with 16, 32, 64 and
128 filters (times --convnet_width), then a fifth (3x3 conv to 64 filters, batch norm, ReLU) without
pooling: 64x64 -> 4x4x64 = 1024 features, the article's size. Other input
sizes (multiples of 16) give (S/16)^2 * 64 features. --convnet_embedding=N adds a
linear dense layer to N units on top (the Euclidean head then compares
embeddings whose components can be negative, not ReLU outputs). Width 1 is about 17M
multiply-adds an image at 64x64; width 2 (32-64-128-256) is 3.7x the arithmetic
(bench/train.py measures steps/s).
"""
import tensorflow as tf

from siamese_graph.model import layers

FILTERS = (16, 32, 64, 128)
LAST_FILTERS = 64
MIN_IMAGE_SIZE = 16
SIZE_MULTIPLE = 16  # four 2x2 max pools
# The options of this net: flags of train of the same name, saved in model.json.
OPTIONS = {
    "convnet_width": (1.0, "convnet: filter multiplier (1: 16-32-64-128, 2: 32-64-128-256)."),
    "convnet_embedding": (0, "convnet: a linear dense embedding of this size on top (0: the conv features)."),
}


def convnet(images, training, weight_decay=0.0, width=1.0, embedding_size=0):
    """[B, S, S, 3] float -> [B, (S/16)^2 * 64] float (1024 at S=64), or with
    embedding_size > 0 a linear dense layer on top: [B, embedding_size]."""
    x = images
    for i, filters in enumerate(FILTERS):
        x = layers.conv2d(x, max(1, int(filters * width)), 3, scope="conv%d" % (i + 1), weight_decay=weight_decay)
        x = tf.nn.relu(layers.batch_norm(x, training, scope="bn%d" % (i + 1)))
        x = layers.max_pool(x)
    x = layers.conv2d(x, LAST_FILTERS, 3, scope="conv5", weight_decay=weight_decay)
    x = tf.nn.relu(layers.batch_norm(x, training, scope="bn5"))
    x = layers.flatten(x)
    if embedding_size:  # linear: ReLU features alone live in the positive orthant
        x = layers.dense(x, embedding_size, scope="embedding", weight_decay=weight_decay)
    return x


def build(images, training, weight_decay=0.0, convnet_width=1.0, convnet_embedding=0):
    """The registry's entry (nets_factory): convnet with its OPTIONS by name."""
    return convnet(images, training, weight_decay, width=convnet_width, embedding_size=convnet_embedding)
