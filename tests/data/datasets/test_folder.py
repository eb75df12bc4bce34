"""The folder-per-person reader (datasets/folder.py): layouts, formats, split folders, symlinks, names that are not UTF-8."""
import os

import pytest
import tensorflow as tf

from siamese_graph.data import records
from siamese_graph.data.datasets import folder
from siamese_graph.errors import DataError
from tests.conftest import face, make_people
from tests.data.test_record_writer import convert


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


def test_a_symlinked_person_folder_is_not_a_second_identity(tmp_path):
    root = make_people(tmp_path / "people", 0, 3, 2)
    os.symlink(root / "p0", root / "p0_alias")
    with pytest.raises(DataError, match="identities 'p0' and 'p0_alias' hold the same photo"):
        folder.read(str(root))
    with pytest.raises(DataError, match="hold the same photo"):
        folder.walk(str(root))  # gallery and embed list people through walk
    os.remove(root / "p0_alias")
    assert len(folder.read(str(root)).identity_names) == 3


def test_split_folders_beside_other_folders_are_named(tmp_path):
    make_people(tmp_path / "train", 0, 3, 2)
    make_people(tmp_path / "valid", 10, 2, 2)
    with pytest.raises(DataError, match=r"split folders \(train\) beside other folders \(valid\).*train, val, test"):
        folder.read(str(tmp_path))
    os.rename(tmp_path / "valid", tmp_path / "val")
    listing = folder.read(str(tmp_path))
    assert {p.split for p in listing.photos} == {"train", "val"}


@pytest.mark.parametrize("bad", [b"caf\xe9/0.png", b"p0/x\xff.png"])
def test_names_that_are_not_utf8_are_refused_in_one_line(tmp_path, bad):
    """Stray bytes in a name (a Latin-1 disk, say) are named in one line, before
    anything is written; the manifest, labels.txt and metadata.tsv are UTF-8."""
    from tests.conftest import cli, face

    root = make_people(tmp_path / "people", 0, 2, 2)
    path = os.fsdecode(os.fsencode(str(root)) + b"/" + bad)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    face(7, 0).save(path, format="PNG")
    with pytest.raises(DataError, match=r"a file or folder name that is not UTF-8 \(b'.*'\); rename it"):
        folder.read(str(root), 0.0, 0.0, 0)
    for command in ("make_records", "align"):
        r = cli("siamese_graph." + command, "--dataset=folder", "--data_dir=%s" % root,
                "--output_dir=%s" % (tmp_path / command), "--test_fraction=0")
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and "not UTF-8" in last and "Traceback" not in r.stderr, r.stderr[-1500:]
        assert not (tmp_path / command).exists()
