"""The CelebA reader (datasets/celeba.py): annotation files as CelebA ships them (header, CRLF, byte-order mark), malformed and disagreeing lines, missing photos."""
import os

import pytest

from siamese_graph.data.datasets import celeba
from siamese_graph.errors import DataError
from tests.conftest import make_celeba
from tests.data.test_record_writer import convert


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


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    make_celeba(tmp_path, [2, 3])
    for name in (celeba.IDENTITY_FILE, celeba.PARTITION_FILE):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    listing = celeba.read(str(tmp_path))
    assert len(listing.photos) == 5 and listing.missing == 0
    assert listing.photos[0].relname == "000001.jpg"
