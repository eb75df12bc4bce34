"""Detection and alignment of one photo as graph builders: the face kept (FaceNet's
rule), the similarity transform from its 5 points to the template, and the warp into
CelebA's aligned 178x218 layout.

    face = align_graph.find_and_align(image)   # image: uint8 [H, W, 3]
    face["aligned"]      # uint8 [218, 178, 3] (black where there is no face)
    face["found"]        # bool: a face at min_confidence or above
    face["box"], face["confidence"], face["points"]

The numpy and Pillow functions of faces/align.py are the reference: the same
choice (align.choose), the same transform (align.similarity_transform, Umeyama's
without reflection: for 2-D points its closed form is a complex ratio), the same
bilinear warp with black outside the photo (align.warp).
"""
import numpy as np
import tensorflow as tf

from siamese_graph.faces import align, detect, mtcnn_nets

# Where no face is found, detection is tried again on the photo with a black border
# of these fractions of its longer side (detect_retrying): MTCNN misses faces that
# fill the photo or are cut by its edge (close-ups, tight crops; docs/faces.md).
PADS = (0.1, 0.25, 0.5)


def choose(boxes, width, height):
    """The index of the face to keep among boxes [N, 4] (N >= 1): as align.choose, the
    largest box less twice the squared distance of its centre from the photo's."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    off = ((x1 + x2) / 2 - width / 2) ** 2 + ((y1 + y2) / 2 - height / 2) ** 2
    return tf.argmax((x2 - x1) * (y2 - y1) - 2.0 * off, output_type=tf.int32)


def similarity_transform(src, dst):
    """float32 [2, 3] M with dst ~= M @ [x, y, 1]: rotation, one scale and a shift
    fitted in least squares to src, dst [K, 2] (x, y) points."""
    mu_s, mu_d = tf.reduce_mean(src, 0), tf.reduce_mean(dst, 0)
    s, d = src - mu_s, dst - mu_d
    norm = tf.reduce_sum(s ** 2)
    a = tf.reduce_sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]) / norm
    b = tf.reduce_sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]) / norm
    rot = tf.stack([tf.stack([a, -b]), tf.stack([b, a])])
    shift = mu_d - tf.linalg.matvec(rot, mu_s)
    return tf.concat([rot, shift[:, None]], axis=1)


def shrink(image, matrix, scale):
    """The float32 photo resized by scale (< align.SHRINK_BELOW) with an antialiasing filter, and matrix [2, 3]
    made to map the small photo's pixels where it mapped the photo's (as align.shrink:
    Pillow's resize, whose bilinear filter widens with the shrink, rounded to 8 bits)."""
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    size = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), 1)
    small = tf.round(tf.image.resize(image, size, "bilinear", antialias=True))
    fy, fx = tf.unstack(tf.cast(size, tf.float32) / hw)
    # pixel centres at integers: photo pixel x is small pixel (x + 0.5) * fx - 0.5
    to_photo = tf.stack([tf.stack([1 / fx, 0.0, 0.5 / fx - 0.5]), tf.stack([0.0, 1 / fy, 0.5 / fy - 0.5]),
                         tf.constant([0.0, 0.0, 1.0])])
    return small, tf.matmul(tf.concat([matrix, tf.constant([[0.0, 0.0, 1.0]])], axis=0), to_photo)[:2]


def warp(image, matrix, width=align.ALIGNED_WIDTH, height=align.ALIGNED_HEIGHT):
    """uint8 [H, W, 3] warped by matrix [2, 3] (photo pixels -> output's) into a
    width x height picture: bilinear, black outside the photo, pixel centres at
    integer coordinates, values truncated to 8 bits (as align.warp: Pillow's).
    Where the matrix shrinks the photo below align.SHRINK_BELOW (a face larger
    than the layout's, as in most camera photos), the photo is first resized by
    the shrink with an antialiasing filter (shrink), so that the bilinear warp
    samples it at the layout's resolution (align.warp's docstring)."""
    image = tf.cast(image, tf.float32)
    scale = tf.sqrt(tf.abs(tf.linalg.det(matrix[:, :2])))
    image, matrix = tf.cond(scale < align.SHRINK_BELOW, lambda: shrink(image, matrix, scale),
                            lambda: (image, matrix))
    inv = tf.linalg.inv(tf.concat([matrix, tf.constant([[0.0, 0.0, 1.0]])], axis=0))
    transform = tf.concat([tf.reshape(inv[:2], [6]), tf.zeros([2])], axis=0)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    return tf.cast(tf.clip_by_value(tf.floor(out), 0, 255), tf.uint8)  # Pillow truncates its bilinear sum


def detect_retrying(image, min_confidence=align.DEFAULT_MIN_CONFIDENCE, max_side=align.DEFAULT_MAX_SIDE,
                    weights=None, pads=PADS):
    """detect.detect on the photo, and where no face reaches min_confidence, again on
    the photo with a black border of each of pads in turn (a face that fills the
    photo or is cut by its edge), until one does.

    Returns:
      (boxes [F, 4], confidences [F], points [F, 5, 2]) of the faces at or above
      min_confidence from the first attempt that found any (none: F = 0).
    """
    pads = tf.constant([0.0] + list(pads), tf.float32)

    def attempt(i, *_):
        boxes, scores, points = detect.detect(image, max_side=max_side, weights=weights, pad=pads[i])
        passed = tf.where(scores >= min_confidence)[:, 0]
        return i + 1, tf.gather(boxes, passed), tf.gather(scores, passed), tf.gather(points, passed)

    none = (tf.constant(0), tf.zeros([0, 4]), tf.zeros([0]), tf.zeros([0, 5, 2]))
    _, boxes, scores, points = tf.while_loop(
        lambda i, b, s, p: tf.logical_and(tf.equal(tf.size(s), 0), i < tf.size(pads)), attempt, none,
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, 4]), tf.TensorShape([None]),
                          tf.TensorShape([None, 5, 2])), parallel_iterations=1)
    return boxes, scores, points


def aligned_size(scale=1.0):
    """(width, height) of the aligned layout at scale (1: CelebA's 178x218; 0.5: 89x109)."""
    return int(round(align.ALIGNED_WIDTH * scale)), int(round(align.ALIGNED_HEIGHT * scale))


def find_and_align(image, min_confidence=align.DEFAULT_MIN_CONFIDENCE, max_side=align.DEFAULT_MAX_SIDE,
                   template=None, weights=None, pads=PADS, scale=1.0):
    """The face align.Detector + align.warp_face would keep and make, in the graph.

    Args:
      image: uint8 [H, W, 3] RGB.
      min_confidence: faces below it are not faces.
      template: align.load_template(); None reads it.
      weights: MTCNN's weights (detect.detect); None loads them.
      pads: the borders tried where the photo as it is shows no face
        (detect_retrying); () for MTCNN as the package runs it.
      scale: the aligned layout's scale (aligned_size): 0.5 aligns a photo of half
        CelebA's resolution (celeba-10k-lowres' 89x109) at its own resolution, the
        template's points scaled with the layout, nothing upsampled.
    Returns:
      {"found": bool, "aligned": uint8 [218, 178, 3] (zeros without a face),
       "box": float32 [4], "confidence": float32, "points": float32 [5, 2],
       "faces": int32 (how many faces passed min_confidence), "kept": the kept one's
       index among all_boxes [F, 4], all_confidences [F], all_points [F, 5, 2] (every
       face that passed, highest confidence first)}.
    """
    template = template or align.load_template()
    image = tf.ensure_shape(image, [None, None, 3])
    boxes, scores, points = detect_retrying(image, min_confidence, max_side, weights, pads)
    found = tf.size(scores) > 0
    shape = tf.cast(tf.shape(image), tf.float32)
    k = tf.cond(found, lambda: choose(boxes, shape[1], shape[0]), lambda: tf.constant(0))
    # without a face, a stand-in (the template itself) keeps the graph's shapes
    stand_in = tf.constant(np.asarray(template["points"], np.float32))
    pts = tf.cond(found, lambda: points[k], lambda: stand_in)
    # pixel centres at integers: a layout scaled by s puts x at (x + 0.5) * s - 0.5
    target = (np.asarray(template["points"], np.float64) + 0.5) * scale - 0.5
    width, height = aligned_size(scale)
    aligned = warp(image, similarity_transform(pts, tf.constant(target.astype(np.float32))), width, height)
    return {"found": found, "aligned": tf.where(found, aligned, tf.zeros_like(aligned)),
            "box": tf.cond(found, lambda: boxes[k], lambda: tf.zeros([4])),
            "confidence": tf.cond(found, lambda: scores[k], lambda: tf.constant(0.0)),
            "points": pts * tf.cast(found, tf.float32), "faces": tf.size(scores), "kept": k,
            "all_boxes": boxes, "all_confidences": scores, "all_points": points}


class Aligner:
    """find_and_align in its own graph and session, for photos already in memory: what
    siamese-align and the commands' --align=mtcnn run.

        aligner = align_graph.Aligner()
        aligned, faces = aligner(rgb)   # None, [] without a face
    """

    def __init__(self, min_confidence=align.DEFAULT_MIN_CONFIDENCE, max_side=align.DEFAULT_MAX_SIDE, threads=1,
                 pads=PADS, scale=1.0):
        """Args:
          min_confidence: faces below it do not count.
          pads: find_and_align's retries with a border; () for none.
          scale: the aligned layout's scale (find_and_align).
          max_side: detect on photos downscaled to this longer side (0: at most
            align.MAX_DETECT_SIDE, the bound that holds whatever is asked).
          threads: TensorFlow's intra- and inter-op threads for this session.
        Raises ImportError (with the install line) when the mtcnn wheel, which holds
        the weights, is missing."""
        if not 0 <= min_confidence <= 1:
            raise ValueError("min_confidence must be in [0, 1]")
        try:
            w = {k: mtcnn_nets.weights(k) for k in ("pnet", "rnet", "onet")}
        except ImportError as e:
            raise ImportError("face detection needs the mtcnn package's weights: pip install mtcnn (%s)" % e)
        self.max_side = min(max_side or align.MAX_DETECT_SIDE, align.MAX_DETECT_SIDE)
        graph = tf.Graph()
        with graph.as_default():
            self._image = tf.compat.v1.placeholder(tf.uint8, [None, None, 3], "image")
            self._out = find_and_align(self._image, min_confidence, self.max_side, weights=w, pads=pads, scale=scale)
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
        self._sess = tf.compat.v1.Session(graph=graph, config=config)

    def __call__(self, rgb):
        """uint8 [H, W, 3] -> (aligned uint8 [218, 178, 3] of the kept face, [align.Face]
        every face found, the kept one first, then by confidence), or (None, [])."""
        out = self._sess.run(self._out, {self._image: np.asarray(rgb, np.uint8)})
        if not out["found"]:
            return None, []
        k = int(out["kept"])
        order = [k] + [i for i in range(len(out["all_confidences"])) if i != k]
        faces = [align.Face(tuple(float(v) for v in out["all_boxes"][i]), float(out["all_confidences"][i]),
                            out["all_points"][i].astype(np.float64)) for i in order]
        return out["aligned"], faces

    def close(self):
        self._sess.close()
