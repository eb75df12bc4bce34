"""The shard writer (record_writer.py): bad photos skipped and recorded, identities contiguous in shards, byte-identical shards whatever the workers, verify; real data at the end."""
import os

import pytest
import tensorflow as tf
from PIL import Image

from siamese_graph.data import record_writer, records
from siamese_graph.data.datasets import celeba, folder
from siamese_graph.errors import DataError
from tests.conftest import face, make_celeba, shared


def read_back(out_dir, split):
    """[(identity index, identity name, filename)] of a split, in shard order, via tf.data."""
    files = records.RecordSet(out_dir).split(split).all_files
    ds = tf.data.TFRecordDataset(files).map(records.parse_example)
    return [(int(e["image/identity"]), e["image/identity_name"].decode(),
             e["image/filename"].decode()) for e in ds.as_numpy_iterator()]


def convert(listing, out_dir, **kw):
    kw.setdefault("num_workers", 1)
    return record_writer.convert(listing, str(out_dir), **kw)


def test_bad_photos_are_skipped_and_recorded(tmp_path, monkeypatch):
    make_celeba(tmp_path, [3, 3, 3])
    img = tmp_path / "img_align_celeba"
    data = (img / "000001.jpg").read_bytes()
    (img / "000002.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (img / "000004.jpg").write_text("not a photo at all")
    big = face(3, 9, size=(400, 400))
    big.save(img / "000007.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    manifest = convert(celeba.read(str(tmp_path)), tmp_path / "out")
    reasons = dict(manifest["skipped"])
    assert set(reasons) == {"000002.jpg", "000004.jpg", "000007.jpg"}
    assert reasons["000002.jpg"].startswith("corrupt image")
    assert reasons["000004.jpg"] == "not an image"
    assert "decompression-bomb" in reasons["000007.jpg"]
    assert manifest["splits"]["train"]["photos"] == 6
    assert sorted(f for _, _, f in read_back(str(tmp_path / "out"), "train")) == [
        "000001.jpg", "000003.jpg", "000005.jpg", "000006.jpg", "000008.jpg", "000009.jpg"]
    with pytest.raises(DataError, match="000002.jpg: corrupt image.*skipped; strict\\)"):
        convert(celeba.read(str(tmp_path)), tmp_path / "strict", strict=True)


def test_empty_and_single_identity_results_fail(tmp_path):
    make_celeba(tmp_path / "one", [4])
    with pytest.raises(DataError, match="only one identity"):
        convert(celeba.read(str(tmp_path / "one")), tmp_path / "out1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no photos"):
        convert(folder.read(str(tmp_path / "empty")), tmp_path / "out2")
    assert not os.path.exists(tmp_path / "out1" / records.MANIFEST)


def test_identities_contiguous_one_shard_each_and_spread(tmp_path):
    counts = [5, 1, 7, 2, 3, 4, 6, 2]
    make_celeba(tmp_path, counts)
    manifest = convert(celeba.read(str(tmp_path)), tmp_path / "out", num_shards=3)
    train = manifest["splits"]["train"]
    assert [s["file"] for s in train["shards"]] == ["train-%05d-of-00003.tfrecord" % k for k in range(3)]
    back = read_back(str(tmp_path / "out"), "train")
    # every identity's photos in one run, and the run lengths match the manifest's blocks
    blocks = [b for s in train["shards"] for b in s["identities"]]
    runs = []
    for identity, _, _ in back:
        if runs and runs[-1][0] == identity:
            runs[-1][1] += 1
        else:
            runs.append([identity, 1])
    assert runs == blocks
    assert sorted(c for _, c in blocks) == sorted(counts)
    assert len({i for i, _ in blocks}) == len(counts)
    sizes = [s["records"] for s in train["shards"]]
    assert max(sizes) - min(sizes) <= max(counts)
    # labels: the identity index maps to the annotation's identity through labels.txt
    labels = dict(line.strip().split(":", 1) for line in open(tmp_path / "out" / "labels.txt"))
    ident = dict(line.split() for line in open(tmp_path / "identity_CelebA.txt"))
    for identity, name, filename in back:
        assert labels[str(identity)] == name == ident[filename]


def test_same_inputs_give_byte_identical_shards_and_verify(tmp_path):
    make_celeba(tmp_path / "src", [4, 3, 5, 2, 6], partitions=[0, 0, 2, 2, 0])
    listing = celeba.read(str(tmp_path / "src"))
    convert(listing, tmp_path / "a", num_shards=2, num_workers=1)
    convert(listing, tmp_path / "b", num_shards=2, num_workers=2)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b"))
    assert ".progress" not in names and not [n for n in names if n.endswith(".tmp")]
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
    assert record_writer.verify(str(tmp_path / "a")) == 20
    shard = tmp_path / "a" / "train-00000-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-00000-of-00002.tfrecord: checksum differs"):
        record_writer.verify(str(tmp_path / "a"))


def test_celeba_mini_counts_and_labels_match_annotations(tmp_path):
    src = shared("celeba-mini")
    manifest = record_writer.convert(celeba.read(src), str(tmp_path), num_workers=2)
    ident = dict(line.split() for line in open(os.path.join(src, "identity_CelebA.txt")))
    part = dict(line.split() for line in open(os.path.join(src, "list_eval_partition.txt")))
    for split, code in (("train", "0"), ("test", "2")):
        back = read_back(str(tmp_path), split)
        expected = {f for f, c in part.items() if c == code}
        assert sorted(f for _, _, f in back) == sorted(expected)
        assert all(ident[f] == name for _, name, f in back)
        assert manifest["splits"][split]["identities"] == len({ident[f] for f in expected})
    assert manifest["splits"]["train"]["photos"] == 4595 and manifest["splits"]["test"]["photos"] == 520
    assert manifest["splits"]["train"]["identities"] == 239 and manifest["splits"]["test"]["identities"] == 28
    assert "val" not in manifest["splits"]


def test_five_celebrities_folder_layout(tmp_path):
    src = shared("five-celebrities")
    manifest = record_writer.convert(folder.read(src), str(tmp_path), num_workers=2)
    assert manifest["splits"]["train"]["photos"] == 88 and manifest["splits"]["test"]["photos"] == 5
    labels = [line.strip().split(":", 1)[1] for line in open(tmp_path / "labels.txt")]
    assert labels == sorted(os.listdir(os.path.join(src, "train")))
    for _, name, filename in read_back(str(tmp_path), "train"):
        assert filename.split("/")[1] == name
    assert record_writer.verify(str(tmp_path)) == 93


def test_full_celeba_annotations_against_partial_folder(tmp_path):
    ann = shared("celeba-annotations")
    lowres = shared("celeba-10k-lowres")
    for f in ("identity_CelebA.txt", "list_eval_partition.txt"):
        os.symlink(os.path.join(ann, f), tmp_path / f)
    os.mkdir(tmp_path / "img_align_celeba")
    present = sorted(os.listdir(os.path.join(lowres, "img_align_celeba")))[::20]
    for name in present:
        os.symlink(os.path.join(lowres, "img_align_celeba", name), tmp_path / "img_align_celeba" / name)
    with pytest.raises(DataError, match="%d of 202599 listed photos are missing" % (202599 - len(present))):
        celeba.read(str(tmp_path))
    listing = celeba.read(str(tmp_path), allow_missing=True)
    assert listing.missing == 202599 - len(present) and listing.source["listed"] == 202599
    manifest = record_writer.convert(listing, str(tmp_path / "out"), num_workers=2)
    ident = dict(line.split() for line in open(os.path.join(ann, "identity_CelebA.txt")))
    back = read_back(str(tmp_path / "out"), "train")
    assert sorted(f for _, _, f in back) == present
    assert all(ident[f] == name for _, name, f in back)
    assert manifest["listed_but_missing"] == 202599 - len(present)
