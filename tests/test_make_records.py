"""make_records: readers, sharding, bad input, determinism, resume; real data at the end."""
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from PIL import Image

from siamese_graph.data import record_writer, records
from siamese_graph.data.datasets import celeba, folder
from siamese_graph.errors import DataError
from tests.conftest import REPO, cli, face, make_celeba, shared


def read_back(out_dir, split):
    """[(identity index, identity name, filename)] of a split, in shard order, via tf.data."""
    files = records.RecordSet(out_dir).split(split).all_files
    ds = tf.data.TFRecordDataset(files).map(records.parse_example)
    return [(int(e["image/identity"]), e["image/identity_name"].decode(),
             e["image/filename"].decode()) for e in ds.as_numpy_iterator()]


def convert(listing, out_dir, **kw):
    kw.setdefault("num_workers", 1)
    return record_writer.convert(listing, str(out_dir), **kw)


# --- unit tests on synthetic fixtures -------------------------------------------------


def test_celeba_header_and_crlf_accepted(tmp_path):
    rows = make_celeba(tmp_path, [3, 2, 4], partitions=[0, 1, 2], header=True, crlf=True)
    listing = celeba.read(str(tmp_path))
    assert len(listing.photos) == len(rows) == 9
    assert listing.identity_names == ["1", "2", "3"]
    assert {p.split for p in listing.photos} == {"train", "val", "test"}


@pytest.mark.parametrize("line,needle", [
    ("000002.jpg\n", "identity_CelebA.txt:2: expected"),
    ("000002.jpg x\n", "identity_CelebA.txt:2: bad identity"),
])
def test_celeba_malformed_line_names_file_and_line(tmp_path, line, needle):
    make_celeba(tmp_path, [2, 2])
    path = tmp_path / "identity_CelebA.txt"
    lines = path.read_text().splitlines(True)
    lines[1] = line
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=needle):
        celeba.read(str(tmp_path))


def test_celeba_duplicate_unknown_partition_and_disagreement(tmp_path):
    make_celeba(tmp_path, [2, 2])
    ident = tmp_path / "identity_CelebA.txt"
    part = tmp_path / "list_eval_partition.txt"
    good_ident, good_part = ident.read_text(), part.read_text()
    ident.write_text(good_ident + "000001.jpg 1\n")
    with pytest.raises(DataError, match=r"identity_CelebA.txt:5: photo 000001.jpg listed twice \(first on line 1\)"):
        celeba.read(str(tmp_path))
    ident.write_text(good_ident)
    part.write_text(good_part.replace("000003.jpg 0", "000003.jpg 7"))
    with pytest.raises(DataError, match="list_eval_partition.txt:3: unknown partition code '7'"):
        celeba.read(str(tmp_path))
    part.write_text("".join(good_part.splitlines(True)[:3]))
    with pytest.raises(DataError, match="000004.jpg is not in .*disagree"):
        celeba.read(str(tmp_path))


def test_celeba_missing_photos_fail_unless_allowed(tmp_path):
    make_celeba(tmp_path, [3, 3])
    os.remove(tmp_path / "img_align_celeba" / "000002.jpg")
    with pytest.raises(celeba.MissingPhotos, match="1 of 6 listed photos are missing"):
        celeba.read(str(tmp_path))
    listing = celeba.read(str(tmp_path), allow_missing=True)
    assert len(listing.photos) == 5 and listing.missing == 1
    manifest = convert(listing, tmp_path / "out")
    assert manifest["listed_but_missing"] == 1


def test_missing_folders_and_files(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        celeba.read(str(tmp_path / "nope"))
    make_celeba(tmp_path, [2, 2])
    os.remove(tmp_path / "list_eval_partition.txt")
    with pytest.raises(DataError, match="list_eval_partition.txt: annotation file not found"):
        celeba.read(str(tmp_path))


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
    with pytest.raises(DataError, match="000002.jpg: corrupt image.*skipped; strict\)"):
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


def test_folder_layout_formats_and_deterministic_disjoint_split(tmp_path):
    root = tmp_path / "people"
    for i in range(10):
        (root / ("person_%d" % i)).mkdir(parents=True)
        face(i, 0).save(root / ("person_%d" % i) / "a.png")
        face(i, 1, mode="L").save(root / ("person_%d" % i) / "b.pgm")
        face(i, 2).save(root / ("person_%d" % i) / "c.jpg")
    (root / "person_0" / "notes.txt").write_text("hello")
    listing = folder.read(str(root), val_fraction=0.2, test_fraction=0.2, seed=3)
    assert folder.read(str(root), 0.2, 0.2, 3) == listing
    split_of = {}
    for p in listing.photos:
        assert split_of.setdefault(p.identity_name, p.split) == p.split  # identity-disjoint
    assert sorted(list(split_of.values()).count(s) for s in ("train", "val", "test")) == [2, 2, 6]
    manifest = convert(listing, tmp_path / "out")
    assert manifest["skipped"] == [["person_0/notes.txt", "not an image"]]
    assert sum(s["photos"] for s in manifest["splits"].values()) == 30
    ds = tf.data.TFRecordDataset(
        [str(tmp_path / "out" / s["file"]) for s in manifest["splits"]["train"]["shards"]])
    for e in ds.map(records.parse_example).as_numpy_iterator():
        assert e["image/format"] == b"jpeg"
        img = tf.io.decode_jpeg(e["image/encoded"]).numpy()
        assert img.shape == (e["image/height"], e["image/width"], 3)


def test_folder_split_folders(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for person in ("ann", "bob"):
            d = tmp_path / split / person
            d.mkdir(parents=True)
            for k in range(n):
                face(len(person), k).save(d / ("%d.jpg" % k))
    listing = folder.read(str(tmp_path))
    assert listing.identity_names == ["ann", "bob"]
    assert sorted((p.split, p.relname) for p in listing.photos)[0] == ("test", "test/ann/0.jpg")


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


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    src = tmp_path / "src"
    make_celeba(src, [2, 2])
    (src / "identity_CelebA.txt").write_text("000001.jpg 1\n000002.jpg 1\nbroken line here\n")
    r = cli("siamese_graph.make_records", "--data_dir=%s" % src,
                "--output_dir=%s" % (tmp_path / "out"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "error: %s:3: expected '<photo> <identity>', got 'broken line here'"
        % (src / "identity_CelebA.txt"))
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_kill_during_run_then_rerun_gives_same_shards(tmp_path):
    src = shared("celeba-mini")
    args = ["--data_dir=%s" % src, "--num_workers=1", "--num_shards=16"]
    ref = cli("siamese_graph.make_records", *args, "--output_dir=%s" % (tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "siamese_graph.make_records", *args,
                             "--output_dir=%s" % out], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few shards are complete, mid-way through
        done = [n for n in os.listdir(out / ".progress")] if (out / ".progress").is_dir() else []
        if len([n for n in done if n.endswith(".json")]) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = os.listdir(out)
    assert records.MANIFEST not in left
    complete = [n for n in left if n.endswith(".tfrecord")]
    assert 3 <= len(complete) < 32, left  # killed mid-way
    for n in complete:  # whatever looks complete is complete
        assert (out / n).read_bytes() == (tmp_path / "ref" / n).read_bytes()
    rerun = cli("siamese_graph.make_records", *args, "--output_dir=%s" % out)
    assert rerun.returncode == 0, rerun.stderr
    assert "shards complete from an earlier run" in rerun.stderr
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "ref"))
    for n in os.listdir(out):
        if n != ".lock":  # the one-writer lock holds its last holder's pid
            assert (out / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n


# --- integration on real data ------------------------------------------------------


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
