"""pair_lists: tab-separated lines for paths with spaces, byte-order marks, the writer."""
import os

import pytest

from siamese_graph.data import pair_lists
from siamese_graph.errors import DataError
from tests.conftest import face


def test_tab_separated_lines_take_paths_with_spaces(tmp_path):
    (tmp_path / "my photos").mkdir()
    a, b = tmp_path / "my photos" / "a 1.jpg", tmp_path / "my photos" / "b 2.jpg"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    (tmp_path / "p.txt").write_text("\ufeff%s\t%s\t0\t4\n%s\t%s\t1\t1\n" % (a, b, b, a))
    pairs = pair_lists.read_list(str(tmp_path / "p.txt"))
    assert pairs == [(str(a), str(b), 0, 4), (str(b), str(a), 1, 1)]
    (tmp_path / "s.txt").write_text("%s\t%s\n" % (a, b))
    assert pair_lists.read_list(str(tmp_path / "s.txt"), labelled=False) == [(str(a), str(b), None, None)]


def test_a_path_with_spaces_in_a_space_separated_line_points_to_tabs(tmp_path):
    (tmp_path / "p.txt").write_text("my photos/a 1.jpg my photos/b 2.jpg 0\n")
    with pytest.raises(DataError, match="separate the fields with tabs"):
        pair_lists.read_list(str(tmp_path / "p.txt"), str(tmp_path))


def test_format_list_reads_back(tmp_path):
    pairs = [("x y/a.jpg", "b.jpg", 0, 3), ("c.jpg", "d e.jpg", 1, 0)]
    for p in ("x y/a.jpg", "b.jpg", "c.jpg", "d e.jpg"):
        (tmp_path / p).parent.mkdir(exist_ok=True)
        (tmp_path / p).write_bytes(b"x")
    (tmp_path / "l.tsv").write_text(pair_lists.format_list(pairs))
    back = pair_lists.read_list(str(tmp_path / "l.tsv"), str(tmp_path))
    assert [(a[len(str(tmp_path)) + 1:], b[len(str(tmp_path)) + 1:], y, f) for a, b, y, f in back] == pairs


def test_lfw_pairs_parsing(tmp_path):
    make_lfw(tmp_path / "lfw")
    text = "2\t2\nAnn_A\t1\t2\nBob_B\t1\t3\nAnn_A\t1\tBob_B\t2\nCid_C\t3\tAnn_A\t2\n" \
           "Cid_C\t1\t2\nBob_B\t2\t3\nBob_B\t1\tCid_C\t1\nAnn_A\t3\tCid_C\t2\n"
    (tmp_path / "pairs.txt").write_text(text)
    pairs = pair_lists.read_lfw(str(tmp_path / "pairs.txt"), str(tmp_path / "lfw"))
    assert len(pairs) == 8
    assert [y for _, _, y, _ in pairs] == [0, 0, 1, 1, 0, 0, 1, 1]
    assert [f for *_, f in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert pairs[2][0].endswith("lfw/Ann_A/Ann_A_0001.jpg") and pairs[2][1].endswith("lfw/Bob_B/Bob_B_0002.jpg")
    pair_lists.check_photos(pairs)
    (tmp_path / "bad.txt").write_text(text.replace("2\t2\n", "2\t3\n"))
    with pytest.raises(DataError, match="header says 2 folds of 3 .* the file has 8 pair lines"):
        pair_lists.read_lfw(str(tmp_path / "bad.txt"), str(tmp_path / "lfw"))
    (tmp_path / "bad2.txt").write_text(text.replace("Bob_B\t1\t3", "Bob_B\t1"))
    with pytest.raises(DataError, match=r"bad2.txt:3: expected 'name i j'"):
        pair_lists.read_lfw(str(tmp_path / "bad2.txt"), str(tmp_path / "lfw"))
    (tmp_path / "missing.txt").write_text("1\t1\nAnn_A\t1\t9\nAnn_A\t1\tBob_B\t2\n")
    with pytest.raises(DataError, match="Ann_A_0009.jpg: photo in the pairs file not found"):
        pair_lists.check_photos(pair_lists.read_lfw(str(tmp_path / "missing.txt"), str(tmp_path / "lfw")))


def test_list_pairs_and_balanced_lists(tmp_path):
    for name in "abcd":
        (tmp_path / (name + ".jpg")).write_bytes(b"")
    (tmp_path / "l.txt").write_text("# a comment\na.jpg b.jpg 0\n\nc.jpg d.jpg 1 3\nc.jpg a.jpg 1\n")
    got = pair_lists.read_list(str(tmp_path / "l.txt"), str(tmp_path))
    p = lambda n: str(tmp_path / (n + ".jpg"))
    # unless every line gives a fold, folds are dealt round-robin per label
    assert got == [(p("a"), p("b"), 0, 0), (p("c"), p("d"), 1, 0), (p("c"), p("a"), 1, 1)]
    # score's files: two paths, the rest ignored; labels optional
    (tmp_path / "s.txt").write_text("a.jpg b.jpg whatever else\nc.jpg d.jpg\n")
    assert pair_lists.read_list(str(tmp_path / "s.txt"), str(tmp_path), labelled=False) == [
        (p("a"), p("b"), None, None), (p("c"), p("d"), None, None)]
    for text, needle in (("a.jpg b.jpg 0\nc.jpg d.jpg 1\nx y 2\n", r"l.txt:3: expected 'path_a path_b label"),
                         ("a.jpg b.jpg 0\na.jpg e.jpg 1\n", r"l.txt:2: photo .*e.jpg not found"),
                         ("a.jpg b.jpg 0 x\n", r"l.txt:1: expected")):
        (tmp_path / "l.txt").write_text(text)
        with pytest.raises(DataError, match=needle):
            pair_lists.read_list(str(tmp_path / "l.txt"), str(tmp_path))
    (tmp_path / "l.txt").write_text("a.jpg\n")
    with pytest.raises(DataError, match=r"l.txt:1: expected 'path_a path_b'"):
        pair_lists.read_list(str(tmp_path / "l.txt"), str(tmp_path), labelled=False)
    (tmp_path / "l.txt").write_bytes("a.jpg b.jpg 0\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"l.txt: not UTF-8 text"):
        pair_lists.read_list(str(tmp_path / "l.txt"), str(tmp_path))
    names = ["p%d" % i for i in range(12)]
    ids = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5]
    a = pair_lists.balanced_from_identities(names, ids, 200, seed=3)
    assert a == pair_lists.balanced_from_identities(names, ids, 200, seed=3)
    ident = dict(zip(names, ids))
    assert sum(y == 0 for *_, y, _ in a) == 100
    for fold in range(10):  # every fold balanced
        assert [y for *_, y, f in a if f == fold].count(0) == 10
        assert [y for *_, y, f in a if f == fold].count(1) == 10
    for x, z, y, _ in a:
        assert (ident[x] != ident[z]) == bool(y) and (y == 1 or x != z)


def make_lfw(root, people=("Ann_A", "Bob_B", "Cid_C"), photos=3):
    for i, name in enumerate(people):
        os.makedirs(root / name)
        for k in range(1, photos + 1):
            face(i, k).save(root / name / ("%s_%04d.jpg" % (name, k)))
