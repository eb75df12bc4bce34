"""pair_lists: tab-separated lines for paths with spaces, byte-order marks, the writer."""
import pytest

from siamese_graph.data import pair_lists
from siamese_graph.errors import DataError


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
