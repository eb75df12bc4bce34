"""The pair input graph on synthetic records; integration on celeba-mini records."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from siamese_graph import inspect_pairs
from siamese_graph.data import pair_cache, pairs, preprocessing, record_writer
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
            "from tests.test_pairs import batches\n"
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


def test_cached_epochs_make_every_anchor_once_with_a_positive_of_its_identity(synthetic_records):
    info = pairs.pairable_split(synthetic_records[0], "train")
    blocks = pair_cache.record_blocks(info)
    identities, starts, counts = blocks
    assert len(identities) == info.photos and sorted(counts) == sorted(c for c in info.counts if c)
    with tf.Graph().as_default():
        epochs = pair_cache._epoch_triplets(blocks, tf.constant(identities), seed=3)
        nxt = tf.compat.v1.data.make_one_shot_iterator(epochs).get_next()
        with tf.compat.v1.Session() as sess:
            first, second = sess.run(nxt), sess.run(nxt)
    multi = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts) if c >= 2])
    for t in (first, second):
        a, p, o = t.T
        assert np.all(identities[a] == identities[p]) and np.all(a != p)  # same pairs: two photos of one person
        assert np.all(identities[a] != identities[o])  # different pairs
        assert len(set(a)) == len(a) and set(a) <= set(multi)  # an anchor at most once an epoch
        assert len(a) >= 0.7 * len(multi)  # only anchors whose other photo had their identity are dropped
        assert len(set(o)) == len(o)  # the other photos: a permutation of the split
        # shuffled: one identity's anchors are spread, not kept side by side
        spans = 1 + np.count_nonzero(identities[a][1:] != identities[a][:-1])
        assert spans > 0.8 * len(a)
    assert not np.array_equal(first, second)  # reshuffled each epoch


@pytest.mark.parametrize("crop,scale_jitter", [("celeba", preprocessing.SCALE_JITTER), ("celeba", 0.25),
                                               ("none", preprocessing.SCALE_JITTER)])
def test_cache_region_holds_every_jittered_box_and_crops_like_the_photo(crop, scale_jitter):
    from tests.conftest import face

    box = preprocessing.CROPS[crop]
    outer, size = pair_cache.cache_geometry(box, 48, augment=True, scale_jitter=scale_jitter)
    t, l, h, w = outer
    jittered = preprocessing.boxes(box, 4000, tf.constant([1, 2]), scale_jitter).numpy()
    heights = np.abs(jittered[:, 2] - jittered[:, 0]) / box[2]  # the scale factors drawn
    assert heights.min() < 1 - 0.9 * scale_jitter and heights.max() > 1 + 0.9 * scale_jitter
    # the region reaches past the photo where the jitter does (there both crops are black)
    assert (t < 0) == (jittered[:, 0].min() < 0) and (l < 0) == (jittered[:, [1, 3]].min() < 0)
    inside = (np.minimum(jittered[:, [0, 2]], jittered[:, [2, 0]])[:, 0] >= t - 1e-6) & \
             (np.maximum(jittered[:, 0], jittered[:, 2]) <= t + h + 1e-6) & \
             (np.minimum(jittered[:, 1], jittered[:, 3]) >= l - 1e-6) & \
             (np.maximum(jittered[:, 1], jittered[:, 3]) <= l + w + 1e-6)
    assert inside.all()
    assert outer[2] > box[2] and size[0] == round(48 * outer[2] / box[2])
    # a crop from the cached region is the crop from the photo, up to the second resampling
    from PIL import ImageFilter
    # a photo's detail, not pixel noise (celeba-mini's photos: 0.018 at 48, bench/pairs.py)
    photo = tf.constant(np.asarray(face(3, 1, size=(178, 218)).filter(ImageFilter.GaussianBlur(1.5))))
    b = preprocessing.boxes(box, 16, tf.constant([5, 6]), scale_jitter)
    direct = preprocessing.crop_resize(photo, 48, b)
    cached = preprocessing.crop_resize_many(pair_cache.cached_region(photo, outer, size)[None], tf.zeros([16], tf.int32),
                                            preprocessing.within(b, outer), 48) / 255.0
    assert float(tf.reduce_mean(tf.abs(direct - cached))) < 0.03
    # mirrored crops stay mirrored, black borders stay where the box leaves the photo
    np.testing.assert_array_equal(tf.reduce_mean(direct, [1, 2, 3]).numpy() < 0.02,
                                  tf.reduce_mean(cached, [1, 2, 3]).numpy() < 0.02)
    left_dark = lambda x: tf.reduce_mean(x[:, :, :2], [1, 2, 3]).numpy() < 0.01
    np.testing.assert_array_equal(left_dark(direct), left_dark(cached))
    # without augmentation the cache holds the crop itself, at the output's size: no resampling
    assert pair_cache.cache_geometry(box, 48, augment=False) == (box, (48, 48))


def test_cached_pairs_are_the_records_photos(synthetic_records):
    """Unaugmented, a cached pair's images are its photos' own crops (to uint8 rounding)."""
    records_dir = synthetic_records[0]
    photos = {}
    for path in pairs.pairable_split(records_dir, "train").files:
        for s in tf.data.TFRecordDataset(path):
            ex = tf.train.Example.FromString(s.numpy())
            photos[ex.features.feature["image/filename"].bytes_list.value[0]] = \
                ex.features.feature["image/encoded"].bytes_list.value[0]
    b = batches(records_dir, 1, cache=True)[0]
    for images, names in ((b["image_a"], b["filename_a"]), (b["image_b"], b["filename_b"])):
        for image, name in zip(images, names):
            want = preprocessing.preprocess(preprocessing.decode(photos[name]), 16).numpy()
            assert np.abs(image - want).max() < 0.05, name


def test_cache_bytes_and_refusals(synthetic_records):
    info = pairs.pairable_split(synthetic_records[0], "train")
    outer, (h, w) = pair_cache.cache_geometry(preprocessing.CROPS["celeba"], 32, True)
    assert pair_cache.cache_bytes(info, 32, "celeba", augment=True) == info.photos * h * w * 3


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


def test_inspect_pairs_cli_json_and_grid(synthetic_records, tmp_path):
    grid = tmp_path / "pairs.png"
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % synthetic_records[0],
                "--num_pairs=200", "--batch_size=20", "--augment", "--save_grid=%s" % grid)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["pairs"] == 200 and report["same_fraction"] == 0.5
    from PIL import Image
    im = Image.open(grid)
    assert im.size == (4 * (2 * 64 + 8), 4 * (64 + 16))
    assert np.asarray(im).std() > 10  # faces drawn, not a blank sheet


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


@pytest.mark.parametrize("size,needle", [("0", "must be in 1..512"), ("-5", "must be in 1..512"),
                                         ("100000", "must be in 1..512")])
def test_inspect_pairs_refuses_the_sizes_train_refuses(synthetic_records, size, needle):
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % synthetic_records[0], "--image_size=" + size)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "--image_size=%s: %s" % (size, needle) in r.stderr.strip().splitlines()[-1]


def test_inspect_pairs_shows_the_default_runs_pairs(synthetic_records, tmp_path):
    """`inspect_pairs --flagfile=train.flags` reads train's own flag file and pulls
    from the graph train builds: two records folders alternating, the cache, and the
    grayscale augmentation (train.flags: --gray_prob=0.4) visible in the pictures."""
    import json as json_

    from PIL import Image

    rec = synthetic_records[0]
    grid = tmp_path / "pairs.png"
    r = cli("siamese_graph.inspect_pairs", "--flagfile=train.flags", "--records_dir=%s,%s" % (rec, rec),
            "--image_size=16", "--batch_size=8", "--num_pairs=64", "--save_grid=%s" % grid, "--grid_pairs=16")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json_.loads(r.stdout)
    assert report["records_dirs"] == [rec, rec] and report["pairs"] == 64
    assert report["augment"] == {"augment": True, "gray_prob": 0.4, "lowres_prob": 0.2, "rotation_deg": 0.0,
                                 "cache": True}
    assert report["mislabeled_pairs"] == 0 and report["same_fraction"] == 0.5
    cells = np.asarray(Image.open(grid).convert("RGB")).astype(int)
    # each cell: image_a | image_b (16 px each) over a 16 px caption, 8 px apart; synthetic photos are colour
    gray = [np.abs(img[..., 0] - img[..., 1]).max() <= 2 and np.abs(img[..., 1] - img[..., 2]).max() <= 2
            for k in range(16) for img in (cells[(k // 4) * 32:(k // 4) * 32 + 16,
                                                 (k % 4) * 40 + o:(k % 4) * 40 + o + 16] for o in (0, 16))]
    assert 0 < sum(gray) < len(gray), sum(gray)  # some made gray, as in training; not all
