"""Detection and alignment as graph builders (faces/align_graph.py) against the numpy
and Pillow reference (faces/align.py): the same transform, the same warp to the
bit, the same face kept, the same aligned face."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from siamese_graph.faces import align, align_graph, mtcnn_nets
from tests.conftest import BLANKS, blank, photo_runner, run_graph, shared

v1 = tf.compat.v1


@pytest.mark.parametrize("seed", range(4))
def test_the_transform_is_umeyamas(seed):
    rng = np.random.RandomState(seed)
    src = rng.uniform(0, 300, (5, 2)).astype(np.float32)
    dst = rng.uniform(0, 200, (5, 2)).astype(np.float32)
    if seed == 3:
        dst = src[:, ::-1].copy()  # a reflection: the reference refuses to mirror, so must the graph
    got = run_graph(align_graph.similarity_transform, src, dst)
    want = align.similarity_transform(src, dst)
    assert np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("scale", [1.25, 0.8, 0.6, 0.3])
def test_the_warp_is_pillows(scale):
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (300, 250, 3)).astype(np.uint8)
    rot = np.array([[0.99499, 0.1], [-0.1, 0.99499]]) * scale  # the corner falls outside
    matrix = np.hstack([rot, [[40.0 * scale], [30.0 * scale]]]).astype(np.float32)
    got = run_graph(align_graph.warp, image, matrix).astype(float)
    want = align.warp(image, matrix.astype(np.float64)).astype(float)
    # inside the photo (2 pixels from its edge, where the two blend black differently):
    # Pillow's fixed-point bilinear, truncated, against float32 truncated, a grey level
    # apart where the sum falls near an integer; 0.09 measured. A matrix below
    # align.SHRINK_BELOW adds both libraries' antialiased resize, each rounded to 8
    # bits (a grey level apart at most; 0.16 on average through the warp)
    photo = want.sum(-1) > 0
    inside = photo.copy()
    for dy in (-2, 0, 2):
        for dx in (-2, 0, 2):
            inside &= np.roll(photo, (dy, dx), axis=(0, 1))
    assert got.shape == want.shape and 0.05 < inside.mean() < 0.95
    assert np.abs(got - want)[inside].max() <= 1
    shrunk = scale < align.SHRINK_BELOW
    assert np.abs(got - want)[inside].mean() < (0.25 if shrunk else 0.2)
    assert (got == want)[inside].mean() > (0.75 if shrunk else 0.9)
    assert (want[:5, :5] == 0).all() and (got[:5, :5] == 0).all()  # outside the photo: black


@pytest.mark.parametrize("warp", [align.warp, lambda i, m: run_graph(align_graph.warp, i, m.astype(np.float32))],
                         ids=["pillow", "graph"])
def test_a_shrinking_warp_does_not_alias(warp):
    # One-pixel stripes shrunk 3.3 times: bilinear sampling alone reads a few pixels of
    # every 3.3 and draws false stripes (moire); the filtered photo is an even grey
    stripes = np.zeros((600, 500, 3), np.uint8)
    stripes[:, ::2] = 255
    matrix = np.array([[0.3, 0.0, 0.0], [0.0, 0.3, 0.0]])
    out = warp(stripes, matrix).astype(float)[10:170, 10:140]  # inside the photo
    assert abs(out.mean() - 127.5) < 3 and out.std() < 6, (out.mean(), out.std())
    # an enlarging warp, or one that shrinks less than SHRINK_BELOW, is bilinear alone
    # (most training photos are warped at 0.8 to 1): the stripes stay
    for scale in (2.0, 0.8):
        near = warp(stripes, np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])).astype(float)[10:160, 10:130]
        assert near.std() > 60, scale


def test_the_face_kept_is_align_chooses():
    rng = np.random.RandomState(1)
    for _ in range(20):
        xy = rng.uniform(0, 300, (6, 2))
        boxes = np.hstack([xy, xy + rng.uniform(10, 120, (6, 2))]).astype(np.float32)
        faces = [align.Face(tuple(b), 1.0, None) for b in boxes]
        assert run_graph(lambda b: align_graph.choose(b, 400.0, 300.0), boxes) == align.choose(faces, 400, 300)[0]


@pytest.fixture(scope="module")
def find():
    weights = {k: mtcnn_nets.weights(k) for k in ("pnet", "rnet", "onet")}
    yield from photo_runner(lambda image: align_graph.find_and_align(image, weights=weights))


def test_whole_photos_give_the_references_aligned_faces(find):
    root = os.path.join(shared("celeba-mini-wild"), "img_celeba")
    reference = align.Detector()
    mads = []
    for name in sorted(os.listdir(root))[5::70][:6]:
        rgb = np.asarray(Image.open(os.path.join(root, name)).convert("RGB"))
        want = reference.detect(rgb)
        got = find(rgb)
        assert bool(got["found"]) == bool(want), name
        if want:
            mads.append(np.abs(got["aligned"].astype(float) - align.warp_face(rgb, want[0])).mean())
            assert got["faces"] == len(want)
    assert len(mads) >= 5 and max(mads) <= 2.0, mads  # the bar: within 2 grey levels


def test_blank_pictures_have_no_face_and_a_black_stand_in(find):
    for kind in BLANKS:
        got = find(blank(kind, (400, 300)))
        assert not got["found"] and got["faces"] == 0 and got["confidence"] == 0, kind
        assert got["aligned"].shape == (218, 178, 3) and not got["aligned"].any()


@pytest.mark.parametrize("size", [(92, 112), (150, 150), (400, 300)])
def test_the_retries_find_no_face_in_blank_pictures_of_any_size(find, size):
    for kind in BLANKS:
        assert not find(blank(kind, size))["found"], (kind, size)


@pytest.fixture(scope="module")
def find_once():
    weights = {k: mtcnn_nets.weights(k) for k in ("pnet", "rnet", "onet")}
    yield from photo_runner(lambda image: align_graph.find_and_align(image, weights=weights, pads=()))


def test_a_tight_crop_is_found_with_a_border_where_mtcnn_alone_misses_it(find, find_once):
    """celeba-mini photos cut to their face box plus 5%: MTCNN as the package runs it
    finds nothing; with the retries' border the face is found, its 5 points where
    they are on the whole photo (within 4 pixels, on faces about 100 pixels wide)."""
    root = os.path.join(shared("celeba-mini"), "img_align_celeba")
    for name in ("194721.jpg", "187556.jpg", "187162.jpg", "200066.jpg"):
        rgb = np.asarray(Image.open(os.path.join(root, name)).convert("RGB"))
        whole = find_once(rgb)
        assert whole["found"], name
        x1, y1, x2, y2 = whole["box"]
        bw, bh = x2 - x1, y2 - y1
        left, top = max(0, int(round(x1 - 0.05 * bw))), max(0, int(round(y1 - 0.05 * bh)))
        right, bottom = int(round(x2 + 0.05 * bw)), int(round(y2 + 0.05 * bh))
        crop = np.ascontiguousarray(rgb[top:bottom, left:right])
        assert not find_once(crop)["found"], name  # the control: the miss this is about
        got = find(crop)
        assert got["found"], name
        assert np.abs(got["points"] + [left, top] - whole["points"]).max() <= 4.0, name


def test_a_half_resolution_photo_aligns_at_its_own_resolution():
    """scale=0.5 (siamese-align --aligned_scale=0.5, for celeba-10k-lowres' 89x109):
    the layout at half size, nothing upsampled, and the same face as the full-size
    photo aligned at full scale, halved (within a few grey levels)."""
    path = os.path.join(shared("celeba-mini"), "img_align_celeba", "182757.jpg")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    half = np.asarray(Image.fromarray(rgb).resize((89, 109), Image.BOX))
    full_aligner, half_aligner = align_graph.Aligner(), align_graph.Aligner(scale=0.5)
    full, faces = full_aligner(rgb)
    small, small_faces = half_aligner(half)
    assert faces and small_faces and small.shape == (109, 89, 3)
    want = np.asarray(Image.fromarray(full).resize((89, 109), Image.BOX)).astype(float)
    mad = np.abs(small.astype(float) - want).mean()
    assert mad < 8.0  # 6.7 here: the points found on the half-size photo move by a pixel or so
    # the control: the face 4 pixels to the side is much further
    assert np.abs(np.roll(small, 4, axis=1).astype(float) - want).mean() > 2 * mad
