"""Source readers (datasets/celeba.py, datasets/folder.py): byte-order marks, split
folders, identities that resolve to the same photos."""
import os

import pytest

from siamese_graph.data.datasets import celeba, folder
from siamese_graph.errors import DataError
from tests.conftest import make_celeba, make_people


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    make_celeba(tmp_path, [2, 3])
    for name in (celeba.IDENTITY_FILE, celeba.PARTITION_FILE):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    listing = celeba.read(str(tmp_path))
    assert len(listing.photos) == 5 and listing.missing == 0
    assert listing.photos[0].relname == "000001.jpg"


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
