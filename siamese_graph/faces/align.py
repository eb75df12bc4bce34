"""Face detection and alignment: find faces and their 5 landmarks, warp one face to
the training photos' geometry (CelebA's aligned layout, 178x218).

    detector = align.Detector()
    faces = detector.detect(rgb)                 # [Face(box, confidence, points)], best first
    aligned = align.warp_face(rgb, faces[0])     # uint8 [218, 178, 3]

The detector is MTCNN (the `mtcnn` package: its three networks' weights ship
inside the wheel, so it runs offline). The warp is a similarity transform
(rotation, uniform scale, shift; no shear), fitted by least squares (Umeyama)
from the 5 detected points to the template: where the same detector finds the
5 points on CelebA's own aligned photos (measured, see template.json and
bench/align_template.py). A photo without a face gives no faces: never a guess.

MTCNN runs eagerly (Keras 3): call it in a process where eager execution is on
(the commands that align do not disable it; their graphs live in their own
tf.Graph). The command `python -m siamese_graph.align` (siamese-align) is in
align/dataset.py (the folder job) and align/__main__.py (its flags).
"""
import collections
import functools
import json
import os

import numpy as np
from PIL import Image

ALIGNED_WIDTH, ALIGNED_HEIGHT = 178, 218
TEMPLATE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "template.json")
POINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # left = the image's left
DEFAULT_MIN_CONFIDENCE = 0.9
DEFAULT_MAX_SIDE = 640
# The largest side detection ever runs at: MTCNN's memory grows with the photo's area
# (a 72-megapixel photo at full size took over 6 GB); larger photos are downscaled.
MAX_DETECT_SIDE = 4096

Face = collections.namedtuple("Face", ["box", "confidence", "points"])
Face.__doc__ = """One detected face: box (x1, y1, x2, y2) in pixels, MTCNN's confidence in [0, 1],
points float [5, 2] (x, y) in POINT_NAMES order."""


@functools.lru_cache(maxsize=None)
def load_template(path=TEMPLATE_FILE):
    """The measured template: {"points": [5, 2] array in the 178x218 layout, "face_box":
    (x1, y1, x2, y2) the detector's mean box there, and how they were measured}.
    Read once a process (callers must not change it)."""
    with open(path) as f:
        t = json.load(f)
    t["points"] = np.asarray(t["points"], np.float64)
    t["face_box"] = tuple(float(v) for v in t["face_box"])
    return t


def similarity_transform(src, dst):
    """The similarity transform that maps src points onto dst points in least squares.

    Umeyama (1991): rotation, one scale and a shift, no shear or reflection.
    Args:
      src, dst: float [K, 2] (x, y) points, K >= 2, not all src points equal.
    Returns:
      float64 [2, 3] matrix M with dst ~= M @ [x, y, 1].
    Raises:
      ValueError for degenerate points.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError("expected two [K, 2] point arrays with K >= 2")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if not np.isfinite(var_s) or var_s < 1e-12:
        raise ValueError("source points coincide or are not finite")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1  # no reflection
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / var_s
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def transform_points(matrix, points):
    """[K, 2] points mapped by a [2, 3] matrix."""
    p = np.asarray(points, np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


# A warp that shrinks the photo below this scale (output pixels per photo pixel)
# resizes it first with an antialiasing filter (shrink). Down to it, bilinear sampling
# alone is kept: it aliases little there, and the resize's second interpolation would
# blur the training photos, most of which are warped at 0.8 to 1 (celeba-mini's
# median 0.88; the lowres folders' at half scale 0.89 and 0.97). Whole photos are
# warped at about 0.3 to 0.5 (docs/faces.md, docs/results.md).
SHRINK_BELOW = 0.75


def shrink(im, matrix):
    """A Pillow image resized by the matrix's scale where it is below SHRINK_BELOW, with Pillow's
    bilinear filter (which widens with the shrink: antialiased), and the matrix
    made to map the small image's pixels where it mapped the photo's."""
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale >= SHRINK_BELOW:
        return im, matrix
    w, h = im.size
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    fx, fy = size[0] / w, size[1] / h
    # pixel centres at integers: photo pixel x is small pixel (x + 0.5) * fx - 0.5
    to_photo = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
    return im.resize(size, Image.BILINEAR), (np.vstack([matrix, [0, 0, 1]]) @ to_photo)[:2]


def warp(rgb, matrix, width=ALIGNED_WIDTH, height=ALIGNED_HEIGHT):
    """uint8 [H, W, 3] warped by matrix (photo pixel coordinates -> output's) into a
    width x height picture: bilinear, black outside the photo. Pixel centres are at
    integer coordinates, as MTCNN's points are. A matrix that shrinks the photo
    below SHRINK_BELOW (a face larger than the layout's) first resizes it by that
    scale with an antialiasing filter (shrink): bilinear sampling alone reads 4
    pixels of every 1/scale^2 and aliases fine detail (hair, textures, JPEG noise)."""
    im, matrix = shrink(Image.fromarray(np.asarray(rgb, np.uint8), "RGB"), np.asarray(matrix, np.float64))
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    # Pillow's AFFINE maps an output pixel's centre (x + 0.5, y + 0.5) through the
    # coefficients to input coordinates whose pixel centres are at + 0.5 too.
    a, b, c = inv[0]
    d, e, f = inv[1]
    coeffs = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    return np.asarray(im.transform((width, height), Image.AFFINE, coeffs, resample=Image.BILINEAR))


def alignment_matrix(face, template=None):
    """The [2, 3] similarity transform taking face.points onto the template's points."""
    template = template or load_template()
    return similarity_transform(face.points, template["points"])


def warp_face(rgb, face, template=None):
    """One face of a photo warped into the aligned 178x218 layout: uint8 [218, 178, 3]."""
    return warp(rgb, alignment_matrix(face, template))


def choose(faces, width, height):
    """(index, reason) of the face to keep among several: as FaceNet's align_dataset_mtcnn,
    the largest box, less twice the squared distance of its centre from the photo's centre."""
    scores = []
    for f in faces:
        x1, y1, x2, y2 = f.box
        off = ((x1 + x2) / 2 - width / 2) ** 2 + ((y1 + y2) / 2 - height / 2) ** 2
        scores.append((x2 - x1) * (y2 - y1) - 2.0 * off)
    return int(np.argmax(scores)), kept_reason(len(faces))


def kept_reason(num_faces):
    """Why the first face of Detector.detect's list is the one kept (the manifests' words)."""
    return "one face" if num_faces == 1 else "%d faces: kept the largest nearest the centre (FaceNet's rule)" % num_faces


class Detector:
    """MTCNN face detection with 5 landmarks, offline (weights in the mtcnn wheel).

    Photos larger than max_side on their longer side are detected on a copy
    downscaled to max_side (the boxes and points scaled back): at most a few
    pixels' difference on faces that large, and MTCNN's image pyramid then costs
    the same for every photo. The downscale is the graph's (detect.detect), so that
    this loop and the graph see the same pixels.

    This is the `mtcnn` package's own Python loop, kept as the reference the graph
    (align_graph.Aligner, what the commands run) is tested against."""

    def __init__(self, min_confidence=DEFAULT_MIN_CONFIDENCE, max_side=DEFAULT_MAX_SIDE, min_face_size=20):
        """Args:
          min_confidence: faces ONet scores below this are dropped.
          max_side: detect on photos downscaled to this longer side (0: at most
            MAX_DETECT_SIDE, the bound that holds whatever is asked).
          min_face_size: MTCNN's smallest face, in pixels of the detected photo.
        Raises ImportError (with the install line) when mtcnn is missing."""
        if not 0 <= min_confidence <= 1:
            raise ValueError("min_confidence must be in [0, 1]")
        try:
            from mtcnn import MTCNN
        except ImportError as e:
            raise ImportError("face detection needs the mtcnn package: pip install mtcnn (%s)" % e)
        import tensorflow as tf

        if not tf.executing_eagerly():
            raise RuntimeError("MTCNN runs eagerly: detect before tf.compat.v1.disable_eager_execution()")
        self._mtcnn = MTCNN()
        self.max_side = min(max_side or MAX_DETECT_SIDE, MAX_DETECT_SIDE)
        self.min_confidence, self.min_face_size = min_confidence, min_face_size

    def detect(self, rgb):
        """uint8 [H, W, 3] -> [Face], the one choose() keeps first, then by confidence."""
        rgb = np.asarray(rgb, np.uint8)
        h, w = rgb.shape[:2]
        rgb_in = rgb
        if max(h, w) > self.max_side:
            import tensorflow as tf

            # the graph's downscale (detect.detect): antialiased bilinear, rounded to grey levels
            scale = self.max_side / float(max(h, w))
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            rgb_in = np.round(tf.image.resize(rgb.astype(np.float32), size, "bilinear", antialias=True).numpy())
            rgb_in = np.clip(rgb_in, 0, 255).astype(np.uint8)
        if min(rgb_in.shape[:2]) < 12:
            return []
        rows = self._mtcnn.detect_faces(rgb_in, box_format="xyxy", output_type="numpy",
                                        min_face_size=self.min_face_size)
        faces = []
        sx, sy = w / float(rgb_in.shape[1]), h / float(rgb_in.shape[0])
        for r in np.asarray(rows).reshape(-1, 16):
            if r[5] < self.min_confidence:
                continue
            box = (r[1] * sx, r[2] * sy, r[3] * sx, r[4] * sy)
            pts = np.stack([r[6:11] * sx, r[11:16] * sy], axis=1)
            faces.append(Face(tuple(float(v) for v in box), float(r[5]), pts))
        if not faces:
            return []
        keep, _ = choose(faces, w, h)
        rest = sorted((f for i, f in enumerate(faces) if i != keep), key=lambda f: -f.confidence)
        return [faces[keep]] + rest


def describe(face):
    """A JSON-ready dict of a Face (the manifests' form)."""
    return {"box": [round(v, 2) for v in face.box], "confidence": round(face.confidence, 5),
            "points": {n: [round(float(x), 2), round(float(y), 2)] for n, (x, y) in zip(POINT_NAMES, face.points)}}
