"""No verdict without a face: MTCNN's output network (ONet) as a graph builder.

ONet is MTCNN's last stage: it looks at one 48x48 box and says whether it holds a
face (a softmax over not-face / face), where the box should be and where the 5
landmarks are. Given the box where a face should be (in an aligned photo, the
template's face box; under a fixed crop, the same box mapped through the crop),
its face probability tells a face from a blank, a wall or noise at the cost of
one small convnet pass (0.2 MFLOP a photo). models.Model and the exported
SavedModel run it beside the tower: a photo whose box scores below
MIN_FACE_PROBABILITY gets no verdict.

The network and its weights are faces/mtcnn_nets.py's (the `mtcnn` package's
weights, tf.nn ops), so the check runs in a v1 graph, a SavedModel and TF Serving.
"""
import tensorflow as tf

from siamese_graph.data import preprocessing
from siamese_graph.faces import align, mtcnn_nets

MIN_FACE_PROBABILITY = 0.5


def face_box(crop, framing=None, template=None):
    """Where the face should be in a photo framed as `crop` says, as fractions
    (y1, x1, y2, x2) of the photo: the template's face box (the detector's mean box
    in the aligned layout), made square around its centre as MTCNN squares its
    boxes, and mapped from the aligned layout's `framing` box to `crop`: the photo's
    `crop` region is taken to show what `framing` shows in the aligned layout.

    Args:
      crop: (top, left, height, width) fractions (preprocessing.parse_crop).
      framing: the aligned layout's box the model was trained on (its model.json
        crop); None: the celeba crop. For an aligned photo pass the same box as
        crop and framing: the face box is then the template's, whatever the crop.
    """
    t = template or align.load_template()
    x1, y1, x2, y2 = t["face_box"]
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x1, x2, y1, y2 = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2
    W, H = align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT
    ct, cl, ch, cw = framing if framing is not None else preprocessing.CROPS["celeba"]
    # the box relative to the framing box of the aligned layout, then through `crop`
    ry1, ry2 = (y1 / H - ct) / ch, (y2 / H - ct) / ch
    rx1, rx2 = (x1 / W - cl) / cw, (x2 / W - cl) / cw
    top, left, height, width = crop
    return (top + ry1 * height, left + rx1 * width, top + ry2 * height, left + rx2 * width)


def face_probability(images, box, weights=None):
    """ONet's face probability of one box in each photo.

    Args:
      images: uint8 or float [N, H, W, 3] RGB photos (0..255), or one [H, W, 3].
      box: (y1, x1, y2, x2) fractions of the photo (face_box).
      weights: mtcnn_nets.weights("onet"); None loads them.
    Returns:
      float32 [N] (a scalar for one photo).
    """
    single = images.shape.ndims == 3
    x = tf.cast(images[None] if single else images, tf.float32)
    n = tf.shape(x)[0]
    patches = tf.image.crop_and_resize((x - 127.5) / 128.0, tf.tile(tf.constant([box], tf.float32), [n, 1]),
                                       tf.range(n), [mtcnn_nets.ONET_SIZE, mtcnn_nets.ONET_SIZE])
    prob, _, _ = mtcnn_nets.onet(patches, weights)
    return prob[0] if single else prob
