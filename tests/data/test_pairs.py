"""The pair input graph on synthetic records; integration on celeba-mini records."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from siamese_graph import inspect_pairs
from siamese_graph.data import pairs, record_writer
from siamese_graph.data.datasets import celeba
from siamese_graph.errors import DataError
from siamese_graph.training import train_config
from tests.conftest import REPO, cli, make_celeba, shared


def pull(records_dir, split="train", num_pairs=400, batch_size=20, **kw):
    tf.compat.v1.reset_default_graph()
    config = train_config.TrainConfig(batch_size=batch_size, **kw)
    return inspect_pairs.inspect(records_dir, split, num_pairs, config)[0]


def batches(records_dir, n, **kw):
    with tf.Graph().as_default():
        ds = pairs.pair_dataset(pairs.pairable_split(records_dir, "train"), 10, image_size=16, **kw)
        nxt = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        with tf.compat.v1.Session() as sess:
            return [sess.run(nxt) for _ in range(n)]


@pytest.mark.parametrize("cache", [False, True])
def test_balanced_correct_labels_no_same_photo(synthetic_records, cache):
    records_dir, counts = synthetic_records
    for b in batches(records_dir, 20, augment=True, cache=cache):
        assert (b["label"] == 0).sum() == (b["label"] == 1).sum() == 5  # every batch exactly half
        assert np.array_equal(b["label"], (b["identity_a"] != b["identity_b"]).astype(np.int32))
        same = b["label"] == 0
        assert not np.any(b["filename_a"][same] == b["filename_b"][same])
        assert b["image_a"].shape == (10, 16, 16, 3) and b["image_a"].dtype == np.float32


@pytest.mark.parametrize("cache", [False, True])
def test_every_identity_appears_no_starvation(synthetic_records, cache):
    records_dir, counts = synthetic_records
    train = counts[:12]
    report = pull(records_dir, num_pairs=3 * sum(train) * 2, cache=cache)  # about three epochs
    assert report["same_fraction"] == 0.5
    assert report["mislabeled_pairs"] == 0 and report["same_photo_pairs"] == 0
    assert report["identities_in_same_pairs"] == sum(c >= 2 for c in train) == 9
    assert report["identities_in_different_pairs"] == len(train)  # singletons included
    assert report["records_read_per_pair"] <= 3
    if cache:  # every record read once, whatever the number of pairs
        assert report["records_read"] == sum(train)


@pytest.mark.parametrize("cache", [False, True])
def test_same_seed_same_batches_in_two_processes(synthetic_records, cache):
    records_dir, _ = synthetic_records
    code = ("import hashlib, sys, tensorflow as tf\n"
            "tf.compat.v1.disable_eager_execution()\n"
            "from tests.data.test_pairs import batches\n"
            "h = hashlib.sha256()\n"
            "for b in batches(sys.argv[1], 4, augment=True, rotation_deg=8, seed=int(sys.argv[2]),\n"
            "                 cache=sys.argv[3] == 'True'):\n"
            "    h.update(b['image_a'].tobytes()); h.update(b['image_b'].tobytes())\n"
            "print('digest', h.hexdigest())\n")
    digests = []
    for seed in (5, 5, 6):
        out = subprocess.run([sys.executable, "-c", code, records_dir, str(seed), str(cache)], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.append([l for l in out.stdout.splitlines() if l.startswith("digest")][0])
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_bad_splits(tmp_path):
    with pytest.raises(DataError, match="records folder not found"):
        pairs.pairable_split(str(tmp_path / "nope"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no manifest"):
        pairs.pairable_split(str(tmp_path / "empty"), "train")
    # train: only singletons; test: one identity
    make_celeba(tmp_path / "src", [1, 1, 1, 3], partitions=[0, 0, 0, 2])
    record_writer.convert(celeba.read(str(tmp_path / "src")), str(tmp_path / "rec"), num_workers=1)
    with pytest.raises(DataError, match="no identity with two photos: no same pairs possible"):
        pairs.pairable_split(str(tmp_path / "rec"), "train")
    with pytest.raises(DataError, match="1 identity: no different pairs possible"):
        pairs.pairable_split(str(tmp_path / "rec"), "test")
    with pytest.raises(DataError, match="no 'val' split"):
        pairs.pairable_split(str(tmp_path / "rec"), "val")


def test_manifest_disagreeing_and_corrupt_shard_are_named(synthetic_records, tmp_path):
    records_dir = str(tmp_path / "rec")
    shutil.copytree(synthetic_records[0], records_dir)
    shard = os.path.join(records_dir, "train-00001-of-00003.tfrecord")
    good = open(shard, "rb").read()
    open(shard, "wb").write(good[:-10])
    with pytest.raises(DataError, match="train-00001-of-00003.tfrecord: .* bytes but the manifest says"):
        pairs.pairable_split(records_dir, "train")
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF  # same size, bad CRC
    open(shard, "wb").write(bytes(data))
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % records_dir, "--num_pairs=2000")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: %s: corrupt shard" % shard), last
    assert "Traceback" not in r.stderr


def test_celeba_mini_records(tmp_path):
    src = shared("celeba-mini")
    record_writer.convert(celeba.read(src), str(tmp_path), num_workers=2)
    ident = dict(line.split() for line in open(os.path.join(src, "identity_CelebA.txt")))
    for split, n in (("train", 10000), ("test", 2000)):
        report = pull(str(tmp_path), split, num_pairs=n, batch_size=100, augment=True)
        assert report["same_fraction"] == 0.5
        assert report["mislabeled_pairs"] == 0 and report["same_photo_pairs"] == 0
        if split == "train":  # the target is over 10,000 pairs; buffer fills dominate short pulls
            assert report["records_read_per_pair"] <= 3
    for b in batches(str(tmp_path), 5):  # labels agree with CelebA's own identity file
        for fa, fb, label in zip(b["filename_a"], b["filename_b"], b["label"]):
            assert label == int(ident[fa.decode()] != ident[fb.decode()])


@pytest.mark.slow
def test_celeba_scale_balance_and_cost(tmp_path):
    shared("celeba-annotations")
    from bench import celeba_scale
    records_dir = celeba_scale.build(str(tmp_path))
    report = pull(records_dir, num_pairs=10000, batch_size=100, image_size=8)
    assert report["split_identities"] == 10177
    assert abs(report["same_fraction"] - 0.5) <= 0.02
    assert report["records_read_per_pair"] <= 3
    assert report["mislabeled_pairs"] == 0


