"""No verdict without a face: faces.PhotoLoader, face_gate, and every photo-taking
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

from siamese_graph import face_gate, faces, preprocessing
from tests.conftest import run_cli, shared

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
    return out


@pytest.fixture
def trained(tiny_model):
    return tiny_model


def real(photos):
    return sorted(v for k, v in photos.items() if k not in BLANKS and k != "people")


def test_face_gate_tells_faces_from_blanks():
    celeba = sorted(os.listdir(os.path.join(shared("celeba-10k-lowres"), "img_align_celeba")))[:40]
    with tf.Graph().as_default():
        img = v1.placeholder(tf.uint8, [None, None, 3])
        prob = face_gate.face_probability(img, face_gate.face_box(preprocessing.parse_crop("celeba")))
        with v1.Session() as sess:
            real_probs = [sess.run(prob, {img: np.asarray(Image.open(os.path.join(
                shared("celeba-10k-lowres"), "img_align_celeba", n)).convert("RGB"))}) for n in celeba]
            blank_probs = [sess.run(prob, {img: blank(k)}) for k in BLANKS]
    assert np.mean(np.array(real_probs) >= face_gate.MIN_FACE_PROBABILITY) >= 0.95, real_probs
    assert max(blank_probs) < 0.05, blank_probs


def test_face_box_follows_the_crop():
    celeba = preprocessing.parse_crop("celeba")
    y1, x1, y2, x2 = face_gate.face_box(celeba)
    assert 0 < x1 < x2 < 1 and 0 < y1 < y2 < 1
    # a crop twice as large around the same centre: the face box is half as large there
    t, l, h, w = celeba
    big = (t - h / 2, l - w / 2, 2 * h, 2 * w)
    by1, bx1, by2, bx2 = face_gate.face_box(big)
    assert np.isclose(by2 - by1, 2 * (y2 - y1)) and np.isclose(bx2 - bx1, 2 * (x2 - x1))


def test_loader_gives_none_without_a_face_and_an_aligned_face_with_one(photos):
    load = faces.PhotoLoader("mtcnn")
    assert load(photos["black"]) is None and load(photos["noise"]) is None
    got = load(real(photos)[0])
    assert got.shape == (218, 178, 3) and got.dtype == np.uint8
    assert load.no_face() == [photos["black"], photos["noise"]]
    assert load.found[real(photos)[0]]["kept"]["confidence"] >= 0.9
    plain = faces.PhotoLoader("none")
    assert plain(photos["black"]) is not None  # no detection: the picture as it is


@pytest.mark.parametrize("align", ["mtcnn", "none"])
def test_score_never_says_same_without_a_face(trained, photos, tmp_path, align):
    people = real(photos)
    pairs = [(photos[k], people[i % len(people)]) for i, k in enumerate(BLANKS)]
    pairs += [(people[0], people[1]), (people[2], people[3])]
    (tmp_path / "pairs.txt").write_text("".join("%s\t%s\n" % p for p in pairs))
    r = run_cli("siamese_graph.score", "--checkpoint_dir=%s" % trained, "--pairs=%s" % (tmp_path / "pairs.txt"),
                "--format=json", ANY_DISTANCE, "--align=%s" % align)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["pairs"]
    verdicts = [row["verdict"] for row in rows]
    assert verdicts[:4] == ["no_face"] * 4
    if align == "mtcnn":
        assert verdicts[4:] == ["same", "same"]  # real faces pass: the threshold would say same
    # two photos: the blank one is named, a distinct exit status, no verdict on stdout
    r = run_cli("siamese_graph.score", "--checkpoint_dir=%s" % trained, ANY_DISTANCE, "--align=%s" % align,
                photos["gray"], people[0])
    assert r.returncode == 3 and "no face found in %s" % photos["gray"] in r.stderr, r.stderr[-1500:]
    assert "same" not in r.stdout


def test_gallery_names_nobody_without_a_face(trained, photos, tmp_path):
    g = tmp_path / "g.npz"
    people = str(tmp_path / "people")
    shutil.copytree(photos["people"], people)
    r = run_cli("siamese_graph.gallery", "--checkpoint_dir=%s" % trained, "--enroll=%s" % people,
                "--gallery=%s" % g, "--k=2", ANY_DISTANCE)
    # the "blank" folder has no face: nothing to enroll for it, said in one line
    assert r.returncode == 1 and "no face found in any of 1 photos" in r.stderr, r.stderr[-1500:]
    shutil.rmtree(os.path.join(people, "blank"))
    r = run_cli("siamese_graph.gallery", "--checkpoint_dir=%s" % trained, "--enroll=%s" % people,
                "--gallery=%s" % g, "--k=2", ANY_DISTANCE)
    assert r.returncode == 0, r.stderr[-1500:]
    assert json.loads(r.stdout.splitlines()[0])["people"] == 2
    probes = [photos[k] for k in BLANKS] + real(photos)[:1]
    r = run_cli("siamese_graph.gallery", "--checkpoint_dir=%s" % trained, "--gallery=%s" % g, ANY_DISTANCE, *probes)
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
    r = run_cli("siamese_graph.embed", "--checkpoint_dir=%s" % trained, "--folder=%s" % people,
                "--output_dir=%s" % (tmp_path / "emb"))
    assert r.returncode == 0, r.stderr[-1500:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["photos"] == 4 and out["no_face"] == [os.path.join(people, "blank", "white.png")]
    assert np.load(tmp_path / "emb" / "embeddings.npy").shape[0] == 4
    ps = real(photos)
    lines = [(ps[0], ps[1], 0), (ps[2], ps[3], 0), (ps[0], ps[2], 1), (ps[1], ps[3], 1), (photos["black"], ps[0], 0)]
    (tmp_path / "p.txt").write_text("".join("%s\t%s\t%d\n" % x for x in lines))
    r = run_cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % trained, "--pairs=%s" % (tmp_path / "p.txt"),
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
    load = faces.PhotoLoader("mtcnn")
    aligned = []
    for i, p in enumerate(real(photos)[:2]):
        aligned.append(str(tmp_path / ("a%d.jpg" % i)))
        Image.fromarray(load(p)).save(aligned[-1], quality=95)
    blanks = []
    for k in BLANKS:
        blanks.append(str(tmp_path / ("%s.jpg" % k)))
        Image.fromarray(blank(k)).save(blanks[-1], quality=95)
    r = run_cli("siamese_graph.export", "--checkpoint_dir=%s" % trained, "--output_dir=%s" % (tmp_path / "out"),
                ANY_DISTANCE)
    assert r.returncode == 0, r.stderr[-2000:]
    pairs = [(b, aligned[i % 2]) for i, b in enumerate(blanks)] + [(aligned[0], aligned[1])]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    p = subprocess.run([sys.executable, "-c", LOAD_AND_VERIFY, str(tmp_path / "out" / "1"),
                        str(tmp_path / "pairs.json")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout)
    assert got["same"] == [False] * 4 + [True], got
    assert max(got["face_a"][:4]) < face_gate.MIN_FACE_PROBABILITY <= min(got["face_a"][4], got["face_b"][4])
