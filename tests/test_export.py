"""export: a SavedModel with photo-in signatures and TFLite models, checked against the checkpoint."""
import base64
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from siamese_graph.data import photos
from siamese_graph.faces import gate, loader
from siamese_graph.inference import models
from siamese_graph.serving import phone, tflite
from tests.conftest import (
    ANY_DISTANCE,
    BLANKS,
    REPO,
    SHARED_DATA,
    blank,
    cli,
    face,
    real,
)

pytestmark = pytest.mark.slow  # trains two small models


def one_line_error(r, needle):
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, last


@pytest.fixture(scope="module")
def runs(synthetic_records, tmp_path_factory):
    """{head: train_dir}: a few steps of each head (absdiff with moving averages)."""
    base = tmp_path_factory.mktemp("export-runs")
    out = {}
    for head, extra in (("euclidean", []), ("absdiff", ["--moving_average_decay=0.9"])):
        out[head] = str(base / head)
        r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % out[head],
                    "--image_size=32", "--batch_size=8", "--max_steps=8", "--head=%s" % head,
                    "--validate_every_n_steps=0", "--shuffle_buffer=64", *extra)
        assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def photo_pairs(tmp_path_factory):
    """Pairs of photo paths: synthetic PNG and JPEG files (RGB and grayscale), plus
    real CelebA photos where ../shared/data is present."""
    base = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(6):
        im = face(i % 3, i, size=(60, 72))
        if i == 4:
            im = im.convert("L")
        paths.append(str(base / ("%d.%s" % (i, "png" if i % 2 else "jpg"))))
        im.save(paths[-1], quality=90) if paths[-1].endswith("jpg") else im.save(paths[-1])
    real = sorted(glob.glob(os.path.join(SHARED_DATA, "celeba-mini", "img_align_celeba", "*.jpg")))[:8]
    paths += real
    return [(paths[i], paths[(i * 5 + 3) % len(paths)]) for i in range(len(paths))], bool(real)


LOAD_AND_RUN = r"""
import json, sys
import tensorflow as tf
assert tf.executing_eagerly()
path, pairs, suffix = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
m = tf.saved_model.load(path)
read = lambda p: open(p, "rb").read()
verify = m.signatures["verify" + suffix](image_a=tf.constant([read(a) for a, _ in pairs]),
                                         image_b=tf.constant([read(b) for _, b in pairs]))
default = m.signatures["serving_default" if not suffix else "verify" + suffix](
    image_a=tf.constant([read(a) for a, _ in pairs]), image_b=tf.constant([read(b) for _, b in pairs]))
feats = m.signatures["embed" + suffix](images=tf.constant([read(a) for a, _ in pairs]))["features"]
print(json.dumps({"distance": verify["distance"].numpy().tolist(), "same": verify["same"].numpy().tolist(),
                  "face_a": verify["face_a"].numpy().tolist(), "face_b": verify["face_b"].numpy().tolist(),
                  "default": default["distance"].numpy().tolist(), "features": feats.numpy().tolist()}))
"""


def export(train_dir, out, *extra):
    return cli("siamese_graph.export", "--checkpoint_dir=%s" % train_dir, "--output_dir=%s" % out, *extra)


def checkpoint_results(train_dir, pairs, flip):
    model = models.Model(train_dir, flip_average=flip)
    d, _, fa, fb = model.pair_distances(pairs, photos.load_photo, with_faces=True)
    feats = model.embed([photos.load_photo(a) for a, _ in pairs])
    return model, d, feats, fa, fb


@pytest.mark.parametrize("head", ["euclidean", "absdiff"])
@pytest.mark.parametrize("flip", [True, False])
def test_saved_model_in_a_fresh_eager_process_matches_the_checkpoint(runs, photo_pairs, tmp_path, head, flip):
    pairs, _ = photo_pairs
    model, want, want_feats, face_a, face_b = checkpoint_results(runs[head], pairs, flip)
    threshold = float(np.median(want))
    r = export(runs[head], tmp_path / "out", "--threshold=%r" % threshold, "--%sflip_average" % ("" if flip else "no"))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["version"] == 1 and summary["saved_model"] == str(tmp_path / "out" / "1")
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    # photos taken as they are (aligned faces): the checkpoint's distances
    p = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, summary["saved_model"], str(tmp_path / "pairs.json"),
                        "_aligned"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout)
    assert np.abs(np.array(got["distance"]) - want).max() <= 1e-5
    assert got["default"] == got["distance"]
    # "same" needs the distance at or below the threshold and a face in both photos (face_gate)
    assert np.abs(np.array(got["face_a"]) - face_a).max() <= 1e-4
    assert np.abs(np.array(got["face_b"]) - face_b).max() <= 1e-4
    faces = (np.array(got["face_a"]) >= 0.5) & (np.array(got["face_b"]) >= 0.5)
    assert got["same"] == [bool(x <= np.float32(threshold) and f)
                           for x, f in zip(np.array(got["distance"], np.float32), faces)]
    below = np.array(got["distance"], np.float32) <= np.float32(threshold)
    assert below.sum() not in (0, len(pairs))  # the threshold splits them: the verdicts were tested
    assert np.abs(np.array(got["features"]) - want_feats).max() <= 1e-5
    meta = json.load(open(tmp_path / "out" / "1" / "assets.extra" / "siamese.json"))
    assert meta["threshold"] == threshold and meta["flip_average"] == flip and meta["head"] == head
    assert meta["weights"] == model.weights_id


def test_tools_rest_body_tflite_and_versions(runs, photo_pairs, tmp_path):
    import tensorflow as tf

    pairs, real = photo_pairs
    train_dir = runs["absdiff"]
    model, want, *_ = checkpoint_results(train_dir, pairs, True)
    threshold = float(np.median(want))
    out = tmp_path / "out"
    r = export(train_dir, out, "--threshold=%r" % threshold, "--tflite")
    assert r.returncode == 0, r.stderr[-3000:]
    version = out / "1"
    # TensorFlow's own tool lists the signatures with dtypes and shapes
    show = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
                           "--dir", str(version), "--all"], capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr[-2000:]
    for key in ("signature_def['embed']", "signature_def['verify']", "signature_def['serving_default']",
                "signature_def['embed_aligned']", "signature_def['verify_aligned']",
                "inputs['image_a']", "inputs['images']", "outputs['same']", "outputs['features']"):
        assert key in show.stdout, key
    assert show.stdout.count("dtype: DT_STRING") == 8 and "dtype: DT_BOOL" in show.stdout
    # and saved_model_cli run gives score's distance
    np.save(tmp_path / "a.npy", np.array([open(pairs[0][0], "rb").read()], dtype=object))
    np.save(tmp_path / "b.npy", np.array([open(pairs[0][1], "rb").read()], dtype=object))
    run = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir",
                          str(version), "--tag_set", "serve", "--signature_def", "verify_aligned", "--inputs",
                          "image_a=%s;image_b=%s" % (tmp_path / "a.npy", tmp_path / "b.npy")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = float(run.stdout.split("output key distance:")[1].split("[")[1].split("]")[0])
    assert abs(printed - want[0]) < 1e-5
    # what docs/serving.md says: verify_aligned takes faces as they are, as score --align=none does
    (tmp_path / "first.txt").write_text("%s\t%s\n" % pairs[0])
    r = cli("siamese_graph.score", "--checkpoint_dir=%s" % train_dir, "--align=none", "--format=json",
            "--pairs=%s" % (tmp_path / "first.txt"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert abs(json.loads(r.stdout)["pairs"][0]["distance"] - printed) < 1e-5
    # The README's REST request body, decoded as TF Serving does, through the loaded SavedModel
    body = json.dumps({"signature_name": "verify_aligned", "instances": [
        {"image_a": {"b64": base64.b64encode(open(a, "rb").read()).decode()},
         "image_b": {"b64": base64.b64encode(open(b, "rb").read()).decode()}} for a, b in pairs]})
    request = json.loads(body)
    columns = {k: [base64.b64decode(inst[k]["b64"]) for inst in request["instances"]] for k in ("image_a", "image_b")}
    loaded = tf.saved_model.load(str(version))
    result = loaded.signatures[request["signature_name"]](**{k: tf.constant(v) for k, v in columns.items()})
    response = {"predictions": [{"distance": float(d), "same": bool(s)}
                                for d, s in zip(result["distance"].numpy(), result["same"].numpy())]}
    assert [p["distance"] for p in response["predictions"]] == pytest.approx(list(want), abs=1e-5)
    # a non-image names the input, the process goes on
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_b: an element is empty or not a JPEG"):
        loaded.signatures["verify_aligned"](image_a=tf.constant([columns["image_a"][0]]),
                                            image_b=tf.constant([b"junk"]))
    # TFLite: float distances match the checkpoint's; dynamic-range int8 agrees on the verdicts
    faces = {}
    for a, b in pairs:
        for p in (a, b):
            photo = photos.load_photo(p)
            rgb = (tf.io.decode_jpeg(photo, channels=3, dct_method="INTEGER_FAST").numpy()
                   if isinstance(photo, bytes) else photo)
            faces[p] = phone.phone_face(rgb, model.crop, model.image_size)
    fa = np.stack([faces[a] for a, _ in pairs])
    fb = np.stack([faces[b] for _, b in pairs])
    tfl = tflite.TFLiteModel(str(version / "tflite" / "model_float.tflite"))
    assert np.abs(tfl.verify(fa, fb) - want).max() <= 1e-4
    assert np.abs(tfl.compare(tfl.embed(fa), tfl.embed(fb)) - want).max() <= 1e-4
    int8 = tflite.TFLiteModel(str(version / "tflite" / "model_int8.tflite"))
    q = int8.verify(fa, fb)
    # checked before the interpreter sees them: NaN faces (int8 gave a distance below the
    # threshold), 1 or 4 channels, uint8, out of range, an empty batch after a wrong shape
    s = model.image_size
    bad = [(np.full((1, s, s, 3), np.nan, np.float32), "not finite"), (np.zeros((1, s, s, 1), np.float32), "shape"),
           (np.zeros((1, s, s, 4), np.float32), "shape"), (np.zeros((1, s, s, 3), np.uint8), "float faces"),
           (np.full((1, s, s, 3), 255.0, np.float32), "in [0, 1]"), (np.zeros((0, s, s, 3), np.float32), "N >= 1")]
    for faces_in, needle in bad:
        with pytest.raises(ValueError, match=re.escape(needle)):
            int8.embed(faces_in)
        with pytest.raises(ValueError, match=re.escape(needle)):
            int8.verify(faces_in, fb[:1])
    with pytest.raises(ValueError, match="features_a: features are not finite"):
        int8.compare(np.full((1, int8.dim), np.nan), tfl.embed(fa[:1]))
    assert np.allclose(int8.verify(fa, fb), q)  # still works after the refusals
    clear = np.abs(want - threshold) > 0.02 * (want.max() - want.min())
    assert ((q <= threshold) == (want <= threshold))[clear].all()
    sizes = {n: os.path.getsize(version / "tflite" / n) for n in ("model_float.tflite", "model_int8.tflite")}
    assert sizes["model_int8.tflite"] < sizes["model_float.tflite"] / 2
    prep = json.load(open(version / "tflite" / "preprocessing.json"))
    assert prep["image_size"] == model.image_size and prep["crop"]["top"] == model.crop[0]
    # versions: an existing one is refused, the next one is 2, --overwrite replaces
    one_line_error(export(train_dir, out, "--threshold=0.5", "--version=1"), "version 1 exists")
    r = export(train_dir, out, "--threshold=0.5")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 2, r.stderr[-2000:]
    r = export(train_dir, out, "--threshold=0.25", "--version=1", "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.load(open(version / "assets.extra" / "siamese.json"))["threshold"] == 0.25
    assert sorted(n for n in os.listdir(out) if n != ".lock") == ["1", "2"]


def test_bad_input_and_a_killed_export(runs, tmp_path):
    train_dir = runs["euclidean"]
    one_line_error(export(tmp_path / "nowhere", tmp_path / "o", "--threshold=1"), "checkpoint folder not found")
    one_line_error(export(train_dir, tmp_path / "o"), "no calibrated threshold")
    assert not (tmp_path / "o").exists()
    one_line_error(export(train_dir, tmp_path / "o", "--threshold=1", "--version=0"), "--version=0")
    # kill -9 in the middle: no folder that looks like a version is left, and the next export cleans up
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "siamese_graph.export", "--checkpoint_dir=%s" % train_dir,
                             "--output_dir=%s" % out, "--threshold=1", "--tflite"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not glob.glob(str(out / ".export-*" / "model" / "variables")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert glob.glob(str(out / ".export-*")), "the export was not caught mid-way"
    assert not [n for n in os.listdir(out) if n.isdigit()]
    r = export(train_dir, out, "--threshold=1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert [n for n in os.listdir(out) if n != ".lock"] == ["1"]


def test_saved_model_never_says_same_without_a_face(tiny_model, face_photos, tmp_path):
    """Whole photos to verify (the face found in the graph) and the same faces aligned
    by siamese-align's code to verify_aligned: a blank picture is never "same", a real
    pair is (the threshold would say same to anything)."""
    load = loader.PhotoLoader("mtcnn")
    aligned = []
    for i, p in enumerate(real(face_photos)[:2]):
        aligned.append(str(tmp_path / ("a%d.jpg" % i)))
        Image.fromarray(load(p)).save(aligned[-1], quality=95)
    blanks = []
    for k in BLANKS:
        blanks.append(str(tmp_path / ("%s.jpg" % k)))
        Image.fromarray(blank(k, (400, 300))).save(blanks[-1], quality=95)
    r = cli("siamese_graph.export", "--checkpoint_dir=%s" % tiny_model, "--output_dir=%s" % (tmp_path / "out"),
                ANY_DISTANCE)
    assert r.returncode == 0, r.stderr[-2000:]
    for suffix, people in (("", real(face_photos)[:2]), ("_aligned", aligned)):
        pairs = [(b, people[i % 2]) for i, b in enumerate(blanks)] + [(people[0], people[1])]
        (tmp_path / "pairs.json").write_text(json.dumps(pairs))
        p = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(tmp_path / "out" / "1"),
                            str(tmp_path / "pairs.json"), suffix], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        got = json.loads(p.stdout)
        assert got["same"] == [False] * 4 + [True], (suffix, got)
        assert max(got["face_a"][:4]) < gate.MIN_FACE_PROBABILITY <= min(got["face_a"][4], got["face_b"][4])
        # the distance score gives on the same files: whole photos through its default
        # alignment, aligned faces as they are
        (tmp_path / "pair.txt").write_text("%s\t%s\n" % tuple(people))
        r = cli("siamese_graph.score", "--checkpoint_dir=%s" % tiny_model, "--format=json", ANY_DISTANCE,
                "--align=%s" % ("mtcnn" if suffix == "" else "none"), "--pairs=%s" % (tmp_path / "pair.txt"))
        assert r.returncode == 0, r.stderr[-1500:]
        assert abs(json.loads(r.stdout)["pairs"][0]["distance"] - got["distance"][4]) < 1e-3, suffix
