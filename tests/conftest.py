"""Shared fixtures: paths to ../shared/data, small synthetic face datasets, and the
two ways to run a command (in this process, or as a process).

The rule every test here keeps: a test asserts a behaviour that can fail, and holds
a control beside it (a real "same" pair next to the blank picture that must never be
"same"; the exact count that a broken resume would change, not a bound it would
pass). Where a check has a tolerance, a comment says where its width comes from
(a measured spread, a codec's rounding), never "until it passed".
"""
import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


# Synthetic colour-pattern photos hold no face: commands that take photo files score
# them as they are (no detection) and with the face check off.
SYNTHETIC = ("--align=none", "--min_face_probability=0")


def shared(name):
    """Path to a ../shared/data set, or skip the test when it is not on this machine."""
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.skip("%s not present: integration data lives in ../shared/data beside the repo" % path)
    return path


def face(identity, k, size=(40, 48), mode="RGB"):
    """A small synthetic photo: a per-identity colour pattern plus per-photo noise."""
    rng = np.random.RandomState(1000 * identity + k)
    base = np.random.RandomState(identity).randint(0, 255, (4, 4, 3)).astype(np.float32)
    img = np.kron(base, np.ones((size[1] // 4, size[0] // 4, 1)))
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(img, "RGB")
    return im.convert(mode)


def make_people(root, first_identity, people, photos, ext="png"):
    """Writes a folder-per-person set: root/p<i>/<k>.<ext> of synthetic identity
    first_identity + i; returns root."""
    for i in range(people):
        (root / ("p%d" % i)).mkdir(parents=True)
        for k in range(photos):
            face(first_identity + i, k).save(root / ("p%d" % i) / ("%d.%s" % (k, ext)))
    return root


def make_celeba(root, counts, partitions=None, header=False, crlf=False):
    """Writes a CelebA-layout folder: counts[i] photos of identity i+1.

    partitions[i] is the partition code of identity i+1 (default 0).
    Returns the list of (file name, identity, partition).
    """
    os.makedirs(os.path.join(root, "img_align_celeba"), exist_ok=True)
    rows, n = [], 0
    for i, c in enumerate(counts):
        for k in range(c):
            n += 1
            name = "%06d.jpg" % n
            face(i + 1, k).save(os.path.join(root, "img_align_celeba", name), quality=90)
            rows.append((name, i + 1, partitions[i] if partitions else 0))
    nl = "\r\n" if crlf else "\n"
    with open(os.path.join(root, "identity_CelebA.txt"), "w", newline="") as f:
        if header:
            f.write("%d%s" % (len(rows), nl))
        f.writelines("%s %d%s" % (r[0], r[1], nl) for r in rows)
    with open(os.path.join(root, "list_eval_partition.txt"), "w", newline="") as f:
        f.writelines("%s %d%s" % (r[0], r[2], nl) for r in rows)
    return rows


def cli(module, *args, timeout=None):
    """Runs a command in this process as `python -m module args` would: the same flag
    parser (common_flags.parse), the same one-line error wrapper (errors.run_main),
    flags reset to their defaults afterwards (timeout: accepted for run_cli's
    signature, not enforced in-process). Returns a CompletedProcess with the
    exit code and what the command printed (stdout, and stderr with its log lines).

    Commands run in-process unless the test is about the process itself (signals,
    kill -9, locks between two processes, clusters, servers, console scripts)."""
    from absl import flags, logging

    from siamese_graph import common_flags, errors

    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    logging.use_absl_handler()  # as absl's app.run does: log lines to stderr
    handler = logging.get_absl_handler().python_handler
    stream, verbosity = handler.stream, logging.get_verbosity()
    handler.stream = err
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(REPO):
            try:
                argv = common_flags.parse([module] + list(args))
                logging.set_verbosity(max(flags.FLAGS.verbosity, logging.INFO))
                errors.run_main(main)(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        handler.stream = stream
        logging.set_verbosity(verbosity)
        flags.FLAGS.unparse_flags()
    return subprocess.CompletedProcess([module] + list(args), code, out.getvalue(), err.getvalue())


def run_cli(module, *args, timeout=600):
    """Runs `python -m module args` from the repo root as a process; returns the
    CompletedProcess. For what only a process shows (see cli)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", module] + list(args), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def synthetic_records(tmp_path_factory):
    """Records of 12 synthetic identities (photo counts below, singletons included)
    in a train split, plus a test split of 3 identities; returns (records_dir, counts)."""
    from siamese_graph.data import record_writer
    from siamese_graph.data.datasets import celeba

    root = tmp_path_factory.mktemp("synthetic")
    counts = [1, 1, 2, 3, 5, 8, 2, 1, 4, 6, 3, 2, 3, 4, 2]
    make_celeba(root / "src", counts, partitions=[0] * 12 + [2] * 3)
    record_writer.convert(celeba.read(str(root / "src")), str(root / "records"), num_shards=3,
                         num_workers=1)
    return str(root / "records"), counts


@pytest.fixture(scope="session")
def six_shard_records(tmp_path_factory):
    """Folder-per-person records (18 people, 5 photos each) in 6 train shards, so that
    two workers (cluster or tf.data service) get 3 shards each."""
    base = tmp_path_factory.mktemp("six-shards")
    src = make_people(base / "src", 0, 18, 5)
    r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % src,
                "--output_dir=%s" % (base / "rec"), "--num_shards=6", "--test_fraction=0")
    assert r.returncode == 0, r.stderr[-2000:]
    return str(base / "rec")


@pytest.fixture(scope="session")
def tiny_model(synthetic_records, tmp_path_factory):
    """A train_dir trained for a few steps on the synthetic records: for tests of what
    restoring commands do (no face, thresholds, artefacts), not of its quality."""
    train_dir = str(tmp_path_factory.mktemp("tiny") / "m")
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % train_dir,
                "--image_size=32", "--batch_size=8", "--max_steps=5", "--validate_every_n_steps=0",
                "--lr_schedule=constant", "--shuffle_buffer=64")
    assert r.returncode == 0, r.stderr[-3000:]
    return train_dir


# --- blank pictures beside real in-the-wild photos: no verdict without a face ---

BLANKS = ("black", "white", "gray", "noise")
# a threshold no distance is above: every pair with faces is "same", so a blank
# picture's "same" could only be stopped by the face check
ANY_DISTANCE = "--threshold=1000000"


def blank(kind, size=(178, 218)):
    w, h = size
    if kind == "noise":
        return np.random.RandomState(0).randint(0, 256, (h, w, 3)).astype(np.uint8)
    return np.full((h, w, 3), {"black": 0, "white": 255, "gray": 128}[kind], np.uint8)


@pytest.fixture(scope="session")
def face_photos(tmp_path_factory):
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
    from siamese_graph.faces import align

    detector = align.Detector()
    os.makedirs(base / "aligned")
    for key in [k for k in out if k not in BLANKS and k != "people"]:
        rgb = np.asarray(Image.open(out[key]).convert("RGB"))
        path = str(base / "aligned" / (os.path.basename(out[key]) + ".png"))
        Image.fromarray(align.warp_face(rgb, detector.detect(rgb)[0])).save(path)
        out["aligned_" + key] = path
    return out


def real(photos, aligned=False):
    """The real photos' paths (whole photos, or their aligned faces)."""
    return sorted(v for k, v in photos.items() if k not in BLANKS and k != "people"
                  and k.startswith("aligned_") == aligned)


# --- graph builders on photos, for tests of the face graphs ---

def run_graph(fn, *args):
    """fn(*constants of args) run once in a fresh graph and session."""
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        return sess.run(fn(*[tf.constant(a) for a in args]))


def photo_runner(build):
    """A generator for a module-scoped fixture: yields rgb -> session.run(build(image))
    for uint8 [H, W, 3] photos, one graph and session for all, closed at the end."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [None, None, 3])
        out = build(image)
        sess = tf.compat.v1.Session(graph=graph)
    yield lambda rgb: sess.run(out, {image: rgb})
    sess.close()
