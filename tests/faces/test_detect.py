"""MTCNN as one graph (faces/detect.py) against the mtcnn package's Python loop
(align.Detector): the same suppression, the same pyramid, the same faces and points
on real photos, and no face on blank pictures."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from siamese_graph.faces import align, detect, mtcnn_nets
from tests.conftest import BLANKS, blank, photo_runner, run_graph, shared

v1 = tf.compat.v1


@pytest.mark.parametrize("method", ["union", "min"])
def test_suppression_is_the_packages(method):
    from mtcnn.utils.bboxes import smart_nms_from_bboxes

    rng = np.random.RandomState(3)
    xy = rng.uniform(0, 100, (300, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 40, (300, 2))]).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    keep = run_graph(lambda b, s: detect.suppress(b, s, 0.5, method), boxes, scores)
    table = np.hstack([np.zeros((300, 1)), boxes, scores[:, None]])
    want = smart_nms_from_bboxes(table, threshold=0.5, method=method, initial_sort=True)
    assert 20 < len(keep) < 280  # the control: some dropped, some kept
    assert np.allclose(boxes[keep], want[:, 1:5])


def test_of_tied_scores_the_later_box_wins():
    """The package sorts descending as an ascending sort reversed; so does the graph,
    which moved 8 faces of celeba-mini-wild back within 2 px of the package's points."""
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12], [50, 50, 60, 60]], np.float32)
    scores = np.array([1.0, 1.0, 0.5, 1.0], np.float32)
    keep = run_graph(lambda b, s: detect.suppress(b, s, 0.3), boxes, scores)
    assert list(keep) == [3, 1]  # box 1 beats the tied box 0 it overlaps; box 2 scores lower


@pytest.mark.parametrize("size", [(218, 178), (640, 427), (13, 200), (12, 12), (11, 40)])
def test_the_pyramid_is_the_packages(size):
    from mtcnn.utils.images import build_scale_pyramid

    got = run_graph(lambda h, w: detect.pyramid_scales(h, w, 20), np.int32(size[0]), np.int32(size[1]))
    want = build_scale_pyramid(size[1], size[0], min_face_size=20, scale_factor=detect.SCALE_FACTOR)
    assert got.shape == want.shape and np.allclose(got, want)


@pytest.fixture(scope="module")
def graph_detector():
    weights = {k: mtcnn_nets.weights(k) for k in ("pnet", "rnet", "onet")}
    yield from photo_runner(lambda image: detect.detect(image, weights=weights))


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_graph_finds_the_packages_faces_and_points(graph_detector):
    """Whole in-the-wild photos of several sizes (the large ones downscaled to 640 as
    the package's path does): every face the package keeps (confidence >= 0.9) is
    found, its box within IoU 0.9 and its 5 points within 2 pixels."""
    root = os.path.join(shared("celeba-mini-wild"), "img_celeba")
    names = sorted(os.listdir(root))[::60][:8]
    reference = align.Detector(min_confidence=0.9)
    faces = 0
    for name in names:
        rgb = np.asarray(Image.open(os.path.join(root, name)).convert("RGB"))
        want = reference.detect(rgb)
        boxes, scores, points = graph_detector(rgb)
        kept = scores >= 0.9
        assert kept.sum() == len(want), name
        for face in want:
            best = max(range(len(boxes)), key=lambda i: _iou(face.box, boxes[i]))
            assert _iou(face.box, boxes[best]) >= 0.9, name
            assert np.abs(points[best] - face.points).max() <= 2.0, name
            assert abs(scores[best] - face.confidence) < 0.01, name
            faces += 1
    assert faces >= len(names)  # the control: faces were found to compare


def test_no_face_on_blank_or_tiny_pictures(graph_detector):
    for kind in BLANKS:
        boxes, scores, _ = graph_detector(blank(kind, (400, 300)))
        assert not (scores >= 0.9).any(), kind
    assert graph_detector(np.zeros((11, 40, 3), np.uint8))[0].shape == (0, 4)
