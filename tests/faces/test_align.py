"""Detection and alignment (faces/align.py): the similarity transform, the warp, the face chosen, real photos onto the template."""


import numpy as np
import pytest
from PIL import Image

from siamese_graph.faces import align
from tests.test_align import WILD, _wild


@pytest.mark.parametrize("deg,scale,shift", [(0, 1, (0, 0)), (17, 2.5, (40, -13)), (-40, 0.4, (300, 120)),
                                             (175, 1.3, (-5, 60))])
def test_similarity_transform_lands_points_on_the_template(deg, scale, shift):
    template = align.load_template()["points"]
    # photo points: the template moved by the inverse of a known similarity, plus sub-pixel noise
    rot = _rotation(deg, scale)
    noise = np.random.RandomState(deg % 7).normal(0, 0.3, template.shape) * min(scale, 1)
    photo_pts = template @ rot.T + np.array(shift) + noise
    m = align.similarity_transform(photo_pts, template)
    landed = align.transform_points(m, photo_pts)
    assert np.abs(landed - template).max() < 1.0
    # a similarity: the 2x2 part is a scaled rotation (no shear, no reflection)
    a = m[:, :2]
    assert abs(a[0, 0] - a[1, 1]) < 1e-9 and abs(a[0, 1] + a[1, 0]) < 1e-9
    assert np.linalg.det(a) > 0
    assert np.isclose(np.sqrt(np.linalg.det(a)), 1 / scale, rtol=0.02)


def test_similarity_transform_never_reflects_or_shears():
    template = align.load_template()["points"]
    mirrored = template * np.array([-1, 1])  # a mirror image: the best similarity cannot undo it
    m = align.similarity_transform(mirrored, template)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError):
        align.similarity_transform(np.ones((5, 2)), template)
    with pytest.raises(ValueError):
        align.similarity_transform(template[:, :1], template[:, :1])


def test_warp_moves_pixels_where_the_matrix_says():
    img = np.zeros((300, 400, 3), np.uint8)
    spots = np.array([[60.0, 80.0], [300.0, 100.0], [200.0, 250.0]])
    for x, y in spots:
        img[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
    m = align.similarity_transform(spots, np.array([[30.0, 40.0], [150.0, 50.0], [100.0, 125.0]]))
    out = align.warp(img, m, 178, 218)
    assert out.shape == (218, 178, 3) and out.dtype == np.uint8
    for (x, y), (tx, ty) in zip(spots, align.transform_points(m, spots)):
        ys, xs = np.nonzero(out[max(0, int(ty) - 4):int(ty) + 5, max(0, int(tx) - 4):int(tx) + 5, 0] > 40)
        cy = (ys * 1.0).mean() + max(0, int(ty) - 4)
        cx = (xs * 1.0).mean() + max(0, int(tx) - 4)
        assert abs(cx - tx) < 1.0 and abs(cy - ty) < 1.0


def test_choose_keeps_the_largest_face_nearest_the_centre():
    pts = np.zeros((5, 2))
    small_centre = align.Face((90, 90, 110, 110), 0.99, pts)
    big_corner = align.Face((0, 0, 60, 60), 0.99, pts)
    big_centre = align.Face((70, 70, 130, 130), 0.95, pts)
    assert align.choose([small_centre, big_corner, big_centre], 200, 200)[0] == 2
    assert align.choose([small_centre], 200, 200) == (0, "one face")


@pytest.fixture(scope="module")
def detector():
    return align.Detector()


def test_real_photos_align_onto_the_template(detector):
    template = align.load_template()["points"]
    errors = []
    for name in WILD:
        rgb = _wild(name)
        faces = detector.detect(rgb)
        assert faces, name
        m = align.alignment_matrix(faces[0])
        aligned = align.warp_face(rgb, faces[0])
        assert aligned.shape == (218, 178, 3)
        again = detector.detect(aligned)
        assert again, "no face found again in the aligned %s" % name
        # where the detector finds the points in the aligned photo is where the warp put them
        errors.append(np.abs(again[0].points - align.transform_points(m, faces[0].points)).mean())
        # and near the template (the 5 points of a real face are not a similarity apart)
        assert np.abs(again[0].points - template).mean() < 6, name
    assert np.mean(errors) < 2.0, errors


def test_several_faces_and_no_face(detector):
    a, b = _wild(WILD[0]), _wild(WILD[1])
    fa, fb = detector.detect(a)[0], detector.detect(b)[0]
    crop = lambda img, f, s: Image.fromarray(img).crop(tuple(int(v) for v in (
        f.box[0] - 20, f.box[1] - 20, f.box[2] + 20, f.box[3] + 20))).resize((s, s))
    canvas = Image.new("RGB", (640, 400), (90, 90, 90))
    canvas.paste(crop(a, fa, 90), (20, 20))       # small, in a corner
    canvas.paste(crop(b, fb, 200), (260, 120))    # large, near the centre
    faces = detector.detect(np.asarray(canvas))
    assert len(faces) == 2
    x1, y1, x2, y2 = faces[0].box
    assert x1 > 200 and (x2 - x1) > 120, faces[0].box  # the kept one is the large central face
    blank = np.full((300, 300, 3), 128, np.uint8)
    noise = np.random.RandomState(0).randint(0, 256, (300, 300, 3)).astype(np.uint8)
    assert detector.detect(blank) == [] and detector.detect(noise) == []
    assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []


def _rotation(deg, scale):
    a = np.deg2rad(deg)
    return scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
