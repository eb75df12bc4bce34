"""MTCNN's three networks (PNet, RNet, ONet) as graph builders with tf.nn ops.

The weights are the `mtcnn` package's (mtcnn/assets/weights/*.lz4, read with joblib
as that package does: nothing is downloaded). The layers follow the package's Keras
models (mtcnn/network/*.py) op for op, so that the same weights give the same
outputs in a v1 graph, a SavedModel and TF Serving.

Every network takes patches as MTCNN feeds them: float32 RGB, (pixel - 127.5) / 128,
and its weights as arrays (each use makes its own constants) or as constants().
"""
import numpy as np
import tensorflow as tf

PNET_CELL = 12   # PNet sees 12x12 windows, every 2 pixels
PNET_STRIDE = 2
RNET_SIZE = 24
ONET_SIZE = 48


def weights(name):
    """The weight arrays of `name` ("pnet", "rnet" or "onet") from the mtcnn wheel, in
    Keras's set_weights order."""
    import importlib.resources

    import joblib

    path = importlib.resources.files("mtcnn.assets.weights") / ("%s.lz4" % name)
    with importlib.resources.as_file(path) as p:
        return [np.asarray(w, np.float32) for w in joblib.load(str(p))]


def constants(w):
    """A network's weights as graph constants, to build the network several times in
    one graph (a SavedModel's inputs) on one copy of them."""
    return [tf.constant(a) for a in w]


def _prelu(x, alpha):
    return tf.maximum(x, 0.0) + tf.reshape(alpha, [-1]) * tf.minimum(x, 0.0)


def _conv(x, k, b):
    return tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "VALID"), b)


def _dense(x, k, b):
    return tf.matmul(x, k) + b


def _flatten_caffe(x, size):
    """Keras's Permute((2, 1, 3)) + Flatten: the weights were trained in Caffe's order."""
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, size])


def pnet(images, w=None):
    """PNet, fully convolutional, on a whole (scaled) photo.

    Args:
      images: float32 [N, H, W, 3], normalized; H, W >= 12.
      w: weights("pnet"); None loads them.
    Returns:
      (box offsets [N, H', W', 4] (x1, y1, x2, y2 as fractions of the 12-pixel cell),
      face probability [N, H', W']), one cell every 2 pixels.
    """
    w = w if w is not None else weights("pnet")
    x = _prelu(_conv(images, w[0], w[1]), w[2])
    x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = _prelu(_conv(x, w[3], w[4]), w[5])
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    offsets = _conv(x, w[9], w[10])
    prob = tf.nn.softmax(_conv(x, w[11], w[12]))[..., 1]
    return offsets, prob


def rnet(patches, w=None):
    """RNet on 24x24 patches.

    Returns:
      (box offsets [N, 4], face probability [N]).
    """
    w = w if w is not None else weights("rnet")
    x = _prelu(_conv(patches, w[0], w[1]), w[2])
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    x = _prelu(_conv(x, w[3], w[4]), w[5])
    x = tf.nn.max_pool2d(x, 3, 2, "VALID")
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    x = _prelu(_dense(_flatten_caffe(x, 3 * 3 * 64), w[9], w[10]), w[11])
    return _dense(x, w[12], w[13]), tf.nn.softmax(_dense(x, w[14], w[15]))[:, 1]


def onet(patches, w=None):
    """ONet on 48x48 patches.

    Returns:
      (face probability [N], box offsets [N, 4], landmarks [N, 10] as fractions of
      the box: x of the 5 points, then y).
    """
    w = w if w is not None else weights("onet")
    x = _prelu(_conv(patches, w[0], w[1]), w[2])
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    x = _prelu(_conv(x, w[3], w[4]), w[5])
    x = tf.nn.max_pool2d(x, 3, 2, "VALID")
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = _prelu(_conv(x, w[9], w[10]), w[11])
    x = _prelu(_dense(_flatten_caffe(x, 3 * 3 * 128), w[12], w[13]), w[14])
    return tf.nn.softmax(_dense(x, w[19], w[20]))[:, 1], _dense(x, w[15], w[16]), _dense(x, w[17], w[18])
