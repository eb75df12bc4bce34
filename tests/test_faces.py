"""No verdict without a face: loader.PhotoLoader, face_gate, and every photo-taking
command (score, gallery, embed, evaluate, the exported SavedModel) given black, white,
gray and noise pictures beside real photos."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from siamese_graph.data import preprocessing
from siamese_graph.faces import align, gate, loader
from tests.conftest import cli, shared

v1 = tf.compat.v1
BLANKS = ("black", "white", "gray", "noise")
# a threshold no distance is above: every pair with faces is "same", so a blank
# picture's "same" could only be stopped by the face check
ANY_DISTANCE = "--threshold=1000000"


def blank(kind, size=(178, 218)):
    w, h = size
    if kind == "noise":
        return np.random.RandomState(0).randint(0, 256, (h, w, 3)).astype(np.uint8)
    return np.full((h, w, 3), {"black": 0, "white": 255, "gray": 128}[kind], np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """{name: path}: 4 blank pictures and 4 real in-the-wild photos of two people."""
    wild = shared("celeba-mini-wild")
    base = tmp_path_factory.mktemp("faces")
    out = {}
    for kind in BLANKS:
        out[kind] = str(base / ("%s.png" % kind))
        Image.fromarray(blank(kind, (400, 300))).save(out[kind])
    ids = dict(line.split() for line in open(os.path.join(wild, "identity_CelebA.txt")))
    by_id = {}
    for name, i in sorted(ids.items()):
        by_id.setdefault(i, []).append(name)
    people = [i for i in sorted(by_id, key=int) if len(by_id[i]) >= 3][:2]
    for p in people:
        os.makedirs(base / "people" / p)
        for name in by_id[p][:2]:
            shutil.copy(os.path.join(wild, "img_celeba", name), base / "people" / p / name)
            out["%s_%s" % (p, name)] = str(base / "people" / p / name)
    os.makedirs(base / "people" / "blank")
    Image.fromarray(blank("black")).save(base / "people" / "blank" / "black.png")
    out["people"] = str(base / "people")
    # the same photos' faces, aligned: what --align=none expects to be given
    detector = align.Detector()
    os.makedirs(base / "aligned")
    for key in [k for k in out if k not in BLANKS and k != "people"]:
        rgb = np.asarray(Image.open(out[key]).convert("RGB"))
        path = str(base / "aligned" / (os.path.basename(out[key]) + ".png"))
        Image.fromarray(align.warp_face(rgb, detector.detect(rgb)[0])).save(path)
        out["aligned_" + key] = path
    return out


@pytest.fixture
def trained(tiny_model):
    return tiny_model


def real(photos, aligned=False):
    """The real photos' paths (whole photos, or their aligned faces)."""
    return sorted(v for k, v in photos.items() if k not in BLANKS and k != "people"
                  and k.startswith("aligned_") == aligned)


def test_face_gate_tells_faces_from_blanks():
    celeba = sorted(os.listdir(os.path.join(shared("celeba-10k-lowres"), "img_align_celeba")))[:40]
    with tf.Graph().as_default():
        img = v1.placeholder(tf.uint8, [None, None, 3])
        prob = gate.face_probability(img, gate.face_box(preprocessing.parse_crop("celeba")))
        with v1.Session() as sess:
            real_probs = [sess.run(prob, {img: np.asarray(Image.open(os.path.join(
                shared("celeba-10k-lowres"), "img_align_celeba", n)).convert("RGB"))}) for n in celeba]
            blank_probs = [sess.run(prob, {img: blank(k)}) for k in BLANKS]
    assert np.mean(np.array(real_probs) >= gate.MIN_FACE_PROBABILITY) >= 0.95, real_probs
    assert max(blank_probs) < 0.05, blank_probs


def test_face_box_follows_the_crop():
    """face_box(crop) is where the face is in a photo whose celeba-crop region sits at
    `crop`: relative to that region it is one fixed box, whatever the crop's size and
    place; under the celeba crop it is in the aligned layout and holds the template's
    five points."""
    def in_region(crop):
        t, l, h, w = crop
        y1, x1, y2, x2 = gate.face_box(crop)
        return np.array([(y1 - t) / h, (x1 - l) / w, (y2 - t) / h, (x2 - l) / w])

    celeba = preprocessing.parse_crop("celeba")
    fy1, fx1, fy2, fx2 = gate.face_box(celeba)
    assert 0 < fx1 < fx2 < 1 and 0 < fy1 < fy2 < 1
    points = align.load_template()["points"] / np.array([align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT])  # (x, y)
    assert ((points[:, 0] > fx1) & (points[:, 0] < fx2) & (points[:, 1] > fy1) & (points[:, 1] < fy2)).all()
    t, l, h, w = celeba
    for other in [(t - h / 2, l - w / 2, 2 * h, 2 * w),  # twice as large around the same centre
                  (t + 0.07, l - 0.05, h, w),             # moved
                  (0.0, 0.0, 1.0, 1.0)]:                  # the photo is the region (--crop=none)
        assert np.allclose(in_region(other), in_region(celeba), atol=1e-9), other
    by1, bx1, by2, bx2 = gate.face_box((t - h / 2, l - w / 2, 2 * h, 2 * w))
    assert np.isclose(by2 - by1, 2 * (fy2 - fy1)) and np.isclose(bx2 - bx1, 2 * (fx2 - fx1))


def test_loader_gives_none_without_a_face_and_an_aligned_face_with_one(photos):
    load = loader.PhotoLoader("mtcnn")
    assert load(photos["black"]) is None and load(photos["noise"]) is None
    got = load(real(photos)[0])
    assert got.shape == (218, 178, 3) and got.dtype == np.uint8
    assert load.no_face() == [photos["black"], photos["noise"]]
    assert load.found[real(photos)[0]]["kept"]["confidence"] >= 0.9
    plain = loader.PhotoLoader("none")
    assert plain(photos["black"]) is not None  # no detection: the picture as it is


@pytest.mark.parametrize("align", ["mtcnn", "none"])
def test_score_never_says_same_without_a_face(trained, photos, tmp_path, align):
    # the controls: real pairs, given as each path expects them (whole photos to detect,
    # or aligned faces), get a verdict; only the blank pictures get none
    people = real(photos, aligned=align == "none")
    pairs = [(photos[k], people[i % len(people)]) for i, k in enumerate(BLANKS)]
    pairs += [(people[0], people[1]), (people[2], people[3])]
    (tmp_path / "pairs.txt").write_text("".join("%s\t%s\n" % p for p in pairs))
    r = cli("siamese_graph.score", "--checkpoint_dir=%s" % trained, "--pairs=%s" % (tmp_path / "pairs.txt"),
                "--format=json", ANY_DISTANCE, "--align=%s" % align)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["pairs"]
    verdicts = [row["verdict"] for row in rows]
    assert verdicts[:4] == ["no_face"] * 4
    assert verdicts[4:] == ["same", "same"]  # real faces pass: the threshold would say same
    # two photos: the blank one is named, a distinct exit status, no verdict on stdout
    r = cli("siamese_graph.score", "--checkpoint_dir=%s" % trained, ANY_DISTANCE, "--align=%s" % align,
                photos["gray"], people[0])
    assert r.returncode == 3 and "no face found in %s" % photos["gray"] in r.stderr, r.stderr[-1500:]
    assert "same" not in r.stdout


def test_gallery_names_nobody_without_a_face(trained, photos, tmp_path):
    g = tmp_path / "g.npz"
    people = str(tmp_path / "people")
    shutil.copytree(photos["people"], people)
    r = cli("siamese_graph.gallery", "--checkpoint_dir=%s" % trained, "--enroll=%s" % people,
                "--gallery=%s" % g, "--k=2", ANY_DISTANCE)
    # the "blank" folder has no face: nothing to enroll for it, said in one line
    assert r.returncode == 1 and "no face found in any of 1 photos" in r.stderr, r.stderr[-1500:]
    shutil.rmtree(os.path.join(people, "blank"))
    r = cli("siamese_graph.gallery", "--checkpoint_dir=%s" % trained, "--enroll=%s" % people,
                "--gallery=%s" % g, "--k=2", ANY_DISTANCE)
    assert r.returncode == 0, r.stderr[-1500:]
    assert json.loads(r.stdout.splitlines()[0])["people"] == 2
    probes = [photos[k] for k in BLANKS] + real(photos)[:1]
    r = cli("siamese_graph.gallery", "--checkpoint_dir=%s" % trained, "--gallery=%s" % g, ANY_DISTANCE, *probes)
    assert r.returncode == 3, r.stderr[-1500:]
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    for k in BLANKS:
        assert lines[photos[k]].startswith("no_face"), lines
    assert not lines[real(photos)[0]].startswith(("no_face", "unknown"))  # the real face gets a name


def test_embed_and_evaluate_leave_out_photos_without_a_face(trained, photos, tmp_path):
    people = str(tmp_path / "people")
    shutil.copytree(photos["people"], people, ignore=shutil.ignore_patterns("blank"))
    os.makedirs(os.path.join(people, "blank"))
    Image.fromarray(blank("white")).save(os.path.join(people, "blank", "white.png"))
    r = cli("siamese_graph.embed", "--checkpoint_dir=%s" % trained, "--folder=%s" % people,
                "--output_dir=%s" % (tmp_path / "emb"))
    assert r.returncode == 0, r.stderr[-1500:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["photos"] == 4 and out["no_face"] == [os.path.join(people, "blank", "white.png")]
    assert np.load(tmp_path / "emb" / "embeddings.npy").shape[0] == 4
    ps = real(photos)
    lines = [(ps[0], ps[1], 0), (ps[2], ps[3], 0), (ps[0], ps[2], 1), (ps[1], ps[3], 1), (photos["black"], ps[0], 0)]
    (tmp_path / "p.txt").write_text("".join("%s\t%s\t%d\n" % x for x in lines))
    r = cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % trained, "--pairs=%s" % (tmp_path / "p.txt"),
                "--folds=2", "--output_dir=%s" % (tmp_path / "ev"))
    assert r.returncode == 0, r.stderr[-1500:]
    report = json.loads(r.stdout)
    assert report["no_face_pairs"] == 1 and report["pairs"] == 4


LOAD_AND_VERIFY = r"""
import json, sys
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
pairs = json.load(open(sys.argv[2]))
read = lambda p: open(p, "rb").read()
out = m.signatures["verify"](image_a=tf.constant([read(a) for a, _ in pairs]),
                             image_b=tf.constant([read(b) for _, b in pairs]))
print(json.dumps({k: out[k].numpy().tolist() for k in ("same", "face_a", "face_b", "distance")}))
"""


def test_saved_model_never_says_same_without_a_face(trained, photos, tmp_path):
    # the SavedModel takes aligned faces: align the real ones as siamese-align would
    load = loader.PhotoLoader("mtcnn")
    aligned = []
    for i, p in enumerate(real(photos)[:2]):
        aligned.append(str(tmp_path / ("a%d.jpg" % i)))
        Image.fromarray(load(p)).save(aligned[-1], quality=95)
    blanks = []
    for k in BLANKS:
        blanks.append(str(tmp_path / ("%s.jpg" % k)))
        Image.fromarray(blank(k)).save(blanks[-1], quality=95)
    r = cli("siamese_graph.export", "--checkpoint_dir=%s" % trained, "--output_dir=%s" % (tmp_path / "out"),
                ANY_DISTANCE)
    assert r.returncode == 0, r.stderr[-2000:]
    pairs = [(b, aligned[i % 2]) for i, b in enumerate(blanks)] + [(aligned[0], aligned[1])]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    p = subprocess.run([sys.executable, "-c", LOAD_AND_VERIFY, str(tmp_path / "out" / "1"),
                        str(tmp_path / "pairs.json")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout)
    assert got["same"] == [False] * 4 + [True], got
    assert max(got["face_a"][:4]) < gate.MIN_FACE_PROBABILITY <= min(got["face_a"][4], got["face_b"][4])
