"""MTCNN face detection as one TensorFlow graph: whole photos in, faces with their
5 points out, in a v1 graph, a SavedModel or TF Serving.

The stages follow the `mtcnn` package (mtcnn/stages, mtcnn/utils) step for step,
with its weights (faces/mtcnn_nets.py): the photo downscaled to max_side,
normalized; PNet over an image pyramid (scales 12/min_face_size * 0.709^k, area
resizing, a cell every 2 pixels); per-scale then cross-scale suppression; RNet on
24x24 patches, ONet on 48x48 ones, each refining the boxes; ONet's 5 points.
Suppression is the package's rule, not greedy NMS: a box is dropped when any
higher-scoring box overlaps it above the threshold (union IoU, or "min" for ONet).
PNet keeps at most MAX_PROPOSALS boxes a scale, the highest scoring (photos with
more candidates than that are textures, not faces; it bounds the suppression's
memory, which grows with the square of the count).

The package's Python loop (align.Detector) stays as the reference the tests
compare with.
"""
import numpy as np
import tensorflow as tf

from siamese_graph.faces import mtcnn_nets

DEFAULT_MIN_FACE_SIZE = 20
SCALE_FACTOR = 0.709
THRESHOLDS = (0.6, 0.7, 0.8)  # PNet, RNet, ONet (the package's defaults)
MAX_PROPOSALS = 2000


def _iou(boxes, method):
    """[N, N] overlap of boxes [N, 4] (x1, y1, x2, y2) with each other."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    area = (x2 - x1) * (y2 - y1)
    iw = tf.maximum(0.0, tf.minimum(x2[:, None], x2[None]) - tf.maximum(x1[:, None], x1[None]))
    ih = tf.maximum(0.0, tf.minimum(y2[:, None], y2[None]) - tf.maximum(y1[:, None], y1[None]))
    inter = iw * ih
    if method == "union":
        return inter / (area[:, None] + area[None] - inter)
    return inter / tf.minimum(area[:, None], area[None])


def suppress(boxes, scores, threshold, method="union"):
    """The package's suppression: boxes sorted by score (highest first), and those no
    higher-scoring box overlaps above threshold.

    Args:
      boxes: float32 [N, 4]; scores: [N]; method: "union" or "min".
    Returns:
      the indices kept, int32 [K], in the sorted order.
    """
    # the package sorts descending as an ascending sort reversed: of boxes with equal
    # scores (PNet gives many exactly 1.0) the later comes first. Which box wins a tie
    # moves the kept face's points by pixels (13 faces of 588 photos were > 2 px off
    # with ties in the other order, 5 with this one).
    order = tf.reverse(tf.argsort(scores, stable=True), [0])
    sorted_boxes = tf.gather(boxes, order)
    overlap = _iou(sorted_boxes, method)
    n = tf.shape(boxes)[0]
    earlier = tf.linalg.band_part(tf.ones([n, n], tf.bool), 0, -1) & ~tf.eye(n, dtype=tf.bool)  # i < j
    dropped = tf.reduce_any((overlap > threshold) & earlier, axis=0)
    return tf.gather(order, tf.where(~dropped)[:, 0])


def to_square(boxes):
    """Boxes [N, 4] made square around their centres, on their longer side."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    w, h = x2 - x1, y2 - y1
    side = tf.maximum(w, h)
    nx1, ny1 = x1 + w * 0.5 - side * 0.5, y1 + h * 0.5 - side * 0.5
    return tf.stack([nx1, ny1, nx1 + side, ny1 + side], axis=1)


def _refine(boxes, offsets):
    """Boxes moved by a network's offsets, as fractions of their (inclusive) size."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    w, h = x2 - x1 + 1.0, y2 - y1 + 1.0
    return boxes + offsets * tf.stack([w, h, w, h], axis=1)


def _patches(normalized, boxes, size):
    """Crops [N, size, size, 3] of one normalized photo [H, W, 3] at boxes [N, 4]
    (pixels), as the package cuts them: the box over the photo's size, 0 outside."""
    shape = tf.cast(tf.shape(normalized), tf.float32)
    h, w = shape[0], shape[1]
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    norm = tf.stack([y1 / h, x1 / w, y2 / h, x2 / w], axis=1)
    return tf.image.crop_and_resize(normalized[None], norm, tf.zeros(tf.shape(boxes)[:1], tf.int32), [size, size])


def _run_net(net, patches, w):
    """A network on a batch that may be empty: one blank patch more, its output
    dropped (TensorFlow's CPU convolution mishandles an empty batch)."""
    extra = tf.concat(
        [patches, tf.zeros(tf.concat([[1], tf.shape(patches)[1:]], 0))], 0)
    return [out[:-1] for out in net(extra, w)]


def pyramid_scales(height, width, min_face_size):
    """The package's pyramid (build_scale_pyramid): float64 [K] scales for a photo."""
    min_dim = tf.cast(tf.minimum(height, width), tf.float64)
    count = tf.cast(tf.round(-(tf.math.log(min_dim / 12.0) / np.log(SCALE_FACTOR) + 1.0)), tf.int32)
    count = tf.maximum(count, 0)
    m = 12.0 / min_face_size
    return m * tf.pow(tf.constant(SCALE_FACTOR, tf.float64), tf.cast(tf.range(count), tf.float64))


def _pnet_stage(normalized, min_face_size, w):
    """Candidate boxes [N, 4] and scores [N] of one normalized photo [H, W, 3]."""
    shape = tf.shape(normalized)
    scales = pyramid_scales(shape[0], shape[1], min_face_size)
    size = tf.cast(shape[:2], tf.float64)

    def one_scale(k, boxes_ta, scores_ta):
        scale = scales[k]
        new = tf.cast(tf.floor(size * scale), tf.int32)
        scaled = tf.image.resize(normalized[None], new, method="area")
        offsets, prob = mtcnn_nets.pnet(scaled, w)
        prob, offsets = prob[0], offsets[0]
        where = tf.where(prob > THRESHOLDS[0])
        score = tf.gather_nd(prob, where)
        top = tf.math.top_k(score, tf.minimum(tf.size(score), MAX_PROPOSALS), sorted=True).indices
        where, score = tf.gather(where, top), tf.gather(score, top)
        reg = tf.gather_nd(offsets, where)
        yx = tf.cast(where, tf.float32) * mtcnn_nets.PNET_STRIDE
        cell = float(mtcnn_nets.PNET_CELL - 1)
        s = tf.cast(scale, tf.float32)
        boxes = tf.stack([yx[:, 1] + 1.0 + reg[:, 0] * cell, yx[:, 0] + 1.0 + reg[:, 1] * cell,
                          yx[:, 1] + mtcnn_nets.PNET_CELL + reg[:, 2] * cell,
                          yx[:, 0] + mtcnn_nets.PNET_CELL + reg[:, 3] * cell], axis=1) / s
        keep = suppress(boxes, score, 0.5)
        return k + 1, boxes_ta.write(k, tf.gather(boxes, keep)), scores_ta.write(k, tf.gather(score, keep))

    ta = lambda: tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)  # noqa: E731
    _, boxes_ta, scores_ta = tf.while_loop(lambda k, *_: k < tf.size(scales), one_scale,
                                           [tf.constant(0), ta(), ta()], parallel_iterations=1)
    boxes = tf.reshape(tf.cond(boxes_ta.size() > 0, lambda: boxes_ta.concat(), lambda: tf.zeros([0, 4])), [-1, 4])
    scores = tf.reshape(tf.cond(scores_ta.size() > 0, lambda: scores_ta.concat(), lambda: tf.zeros([0])), [-1])
    keep = suppress(boxes, scores, 0.7)
    return to_square(tf.gather(boxes, keep)), tf.gather(scores, keep)


def detect_normalized(normalized, min_face_size=DEFAULT_MIN_FACE_SIZE, weights=None):
    """MTCNN on one normalized photo.

    Args:
      normalized: float32 [H, W, 3], (pixel - 127.5) / 128; H, W >= 12.
      weights: {"pnet", "rnet", "onet": arrays} (mtcnn_nets.weights); None loads them.
    Returns:
      (boxes [N, 4] (x1, y1, x2, y2) in the photo's pixels, clipped to it;
      confidences [N] (ONet's); points [N, 5, 2] (x, y) in mtcnn's point order),
      highest confidence first, those ONet scores above its threshold.
    """
    w = weights or {k: mtcnn_nets.weights(k) for k in ("pnet", "rnet", "onet")}
    boxes, _ = _pnet_stage(normalized, min_face_size, w["pnet"])
    offsets, score = _run_net(mtcnn_nets.rnet, _patches(normalized, boxes, mtcnn_nets.RNET_SIZE), w["rnet"])
    boxes = _refine(boxes, offsets)
    passed = tf.where(score > THRESHOLDS[1])[:, 0]
    boxes, score = tf.gather(boxes, passed), tf.gather(score, passed)
    keep = suppress(boxes, score, 0.7)
    boxes = to_square(tf.gather(boxes, keep))
    score, offsets, marks = _run_net(mtcnn_nets.onet, _patches(normalized, boxes, mtcnn_nets.ONET_SIZE), w["onet"])
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    bw, bh = (x2 - x1 + 1.0)[:, None], (y2 - y1 + 1.0)[:, None]
    points = tf.stack([bw * marks[:, :5] + x1[:, None] - 1.0, bh * marks[:, 5:] + y1[:, None] - 1.0], axis=2)
    boxes = _refine(boxes, offsets)
    passed = tf.where(score > THRESHOLDS[2])[:, 0]
    boxes, score, points = tf.gather(boxes, passed), tf.gather(score, passed), tf.gather(points, passed)
    keep = suppress(boxes, score, 0.7, "min")
    boxes, score, points = tf.gather(boxes, keep), tf.gather(score, keep), tf.gather(points, keep)
    shape = tf.cast(tf.shape(normalized), tf.float32)
    limit = tf.stack([shape[1], shape[0], shape[1], shape[0]]) - 1.0
    return tf.clip_by_value(boxes, 0.0, limit), score, points


def detect(image, max_side=640, min_face_size=DEFAULT_MIN_FACE_SIZE, weights=None, pad=0.0):
    """Faces in one photo, as align.Detector finds them (before its confidence cut).

    Args:
      image: uint8 [H, W, 3] RGB.
      max_side: photos with a longer side are detected on a copy downscaled to it
        (bilinear with antialiasing, as Pillow's), the results scaled back.
      pad: a float (or float scalar tensor): before detection, the (downscaled)
        photo gets a black border this fraction of its longer side wide on each
        side, so that a face filling the photo, or cut by its edge, has the margin
        around it MTCNN's networks learnt from. Boxes are clipped to the photo;
        points may lie outside it.
    Returns:
      (boxes [N, 4], confidences [N], points [N, 5, 2]) in the photo's pixels, the
      highest confidence first; none where the photo is under 12 pixels on a side.
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.minimum(1.0, max_side / tf.maximum(h, w))
    size = tf.maximum(1, tf.cast(tf.round(tf.stack([h, w]) * scale), tf.int32))
    x = tf.cast(image, tf.float32)
    small = tf.cond(scale < 1.0, lambda: tf.round(tf.image.resize(x, size, "bilinear", antialias=True)),
                    lambda: x)  # rounded to whole grey levels, as Pillow's resize of the package's path
    small_shape = tf.cast(tf.shape(small), tf.float32)
    sx, sy = w / small_shape[1], h / small_shape[0]
    border = tf.cast(tf.round(tf.cast(pad, tf.float32) * tf.reduce_max(small_shape[:2])), tf.int32)
    padded = tf.pad(small, [[border, border], [border, border], [0, 0]])
    shift = tf.cast(border, tf.float32)
    limit = tf.stack([small_shape[1], small_shape[0], small_shape[1], small_shape[0]]) - 1.0

    def run():
        boxes, score, points = detect_normalized((padded - 127.5) / 128.0, min_face_size, weights)
        boxes = tf.clip_by_value(boxes - shift, 0.0, limit)
        return boxes * tf.stack([sx, sy, sx, sy]), score, (points - shift) * tf.stack([sx, sy])

    def none():
        return tf.zeros([0, 4]), tf.zeros([0]), tf.zeros([0, 5, 2])

    return tf.cond(tf.reduce_min(tf.shape(small)[:2]) >= 12, run, none)
