"""No verdict without a face: MTCNN's output network (ONet) as a graph builder.

ONet is MTCNN's last stage: it looks at one 48x48 box and says whether it holds a
face (a softmax over not-face / face), where the box should be and where the 5
landmarks are. Given the box where a face should be (in an aligned photo, the
template's face box; under a fixed crop, the same box mapped through the crop),
its face probability tells a face from a blank, a wall or noise at the cost of
one small convnet pass (0.2 MFLOP a photo). models.Model and the exported
SavedModel run it beside the tower: a photo whose box scores below
MIN_FACE_PROBABILITY gets no verdict.

The weights are the `mtcnn` package's (assets/weights/onet.lz4, loaded with
joblib as that package does); the layers are written with tf.nn ops, as the rest
of the project's graphs, so they run in a v1 graph, a SavedModel and TF Serving.
"""
import numpy as np
import tensorflow as tf

from siamese_graph.data import preprocessing
from siamese_graph.faces import align

ONET_SIZE = 48
MIN_FACE_PROBABILITY = 0.5


def onet_weights():
    """ONet's 21 weight arrays from the mtcnn wheel (Keras's set_weights order)."""
    import importlib.resources

    import joblib

    path = importlib.resources.files("mtcnn.assets.weights") / "onet.lz4"
    with importlib.resources.as_file(path) as p:
        return [np.asarray(w, np.float32) for w in joblib.load(str(p))]


def _prelu(x, alpha):
    return tf.maximum(x, 0.0) + tf.constant(alpha.reshape(-1)) * tf.minimum(x, 0.0)


def onet(patches, weights=None):
    """ONet on normalized patches.

    Args:
      patches: float32 [N, 48, 48, 3], RGB, (pixel - 127.5) / 128 as MTCNN feeds it.
      weights: onet_weights(); None loads them.
    Returns:
      (face probability [N], box offsets [N, 4], landmarks [N, 10] as fractions of the box:
      x of the 5 points, then y).
    """
    w = weights if weights is not None else onet_weights()
    c = [tf.constant(a) for a in w]

    def conv(x, k, b):
        return tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "VALID"), b)

    x = _prelu(conv(patches, c[0], c[1]), w[2])
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    x = _prelu(conv(x, c[3], c[4]), w[5])
    x = tf.nn.max_pool2d(x, 3, 2, "VALID")
    x = _prelu(conv(x, c[6], c[7]), w[8])
    x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = _prelu(conv(x, c[9], c[10]), w[11])
    x = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, 3 * 3 * 128])  # Caffe's order (Keras Permute((2, 1, 3)))
    x = _prelu(tf.matmul(x, c[12]) + c[13], w[14])
    boxes = tf.matmul(x, c[15]) + c[16]
    points = tf.matmul(x, c[17]) + c[18]
    prob = tf.nn.softmax(tf.matmul(x, c[19]) + c[20])[:, 1]
    return prob, boxes, points


def face_box(crop, template=None):
    """Where the face should be in a photo framed as `crop` says, as fractions
    (y1, x1, y2, x2) of the photo: the template's face box (the detector's mean box
    in the aligned layout), made square around its centre as MTCNN squares its
    boxes, and mapped from the aligned layout's celeba crop to `crop`.

    Args:
      crop: (top, left, height, width) fractions (preprocessing.parse_crop).
    """
    t = template or align.load_template()
    x1, y1, x2, y2 = t["face_box"]
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x1, x2, y1, y2 = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2
    W, H = align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT
    ct, cl, ch, cw = preprocessing.CROPS["celeba"]
    # the box relative to the celeba crop of the aligned layout, then through `crop`
    ry1, ry2 = (y1 / H - ct) / ch, (y2 / H - ct) / ch
    rx1, rx2 = (x1 / W - cl) / cw, (x2 / W - cl) / cw
    top, left, height, width = crop
    return (top + ry1 * height, left + rx1 * width, top + ry2 * height, left + rx2 * width)


def face_probability(images, box, weights=None):
    """ONet's face probability of one box in each photo.

    Args:
      images: uint8 or float [N, H, W, 3] RGB photos (0..255), or one [H, W, 3].
      box: (y1, x1, y2, x2) fractions of the photo (face_box).
    Returns:
      float32 [N] (a scalar for one photo).
    """
    single = images.shape.ndims == 3
    x = tf.cast(images[None] if single else images, tf.float32)
    n = tf.shape(x)[0]
    patches = tf.image.crop_and_resize((x - 127.5) / 128.0, tf.tile(tf.constant([box], tf.float32), [n, 1]),
                                       tf.range(n), [ONET_SIZE, ONET_SIZE])
    prob, _, _ = onet(patches, weights)
    return prob[0] if single else prob
