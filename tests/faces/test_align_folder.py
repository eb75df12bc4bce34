"""Aligning a folder (faces/align_folder.py): which source photos it reads, and the
names it writes them under. The command around it is tested in tests/test_align.py."""
import os

from siamese_graph.data.datasets import celeba
from siamese_graph.faces import align_folder
from tests.conftest import make_celeba, make_people


class _Photo:
    def __init__(self, relname):
        self.relname = relname


def test_output_names_never_put_two_photos_on_one_file():
    photos = [_Photo(n) for n in ("pA/x.jpg", "pA/x.png", "pA/y.png", "pB/x.png", "pA/z.JPEG")]
    names = align_folder.output_names(photos, "folder")
    assert names == {"pA/x.jpg": "pA/x.jpg", "pA/x.png": "pA/x.png.jpg", "pA/y.png": "pA/y.jpg",
                     "pB/x.png": "pB/x.jpg", "pA/z.JPEG": "pA/z.jpg"}
    assert len(set(names.values())) == len(photos)
    celeba_names = align_folder.output_names([_Photo("000001.png")], "celeba")
    assert celeba_names == {"000001.png": os.path.join(celeba.IMAGES, "000001.jpg")}


def test_read_source_prefers_celebas_in_the_wild_photos(tmp_path):
    make_celeba(tmp_path, [2, 2])
    aligned = align_folder.read_source(str(tmp_path), "celeba")
    assert os.path.dirname(aligned.photos[0].path).endswith(celeba.IMAGES)
    os.rename(tmp_path / celeba.IMAGES, tmp_path / celeba.WILD_IMAGES)
    wild = align_folder.read_source(str(tmp_path), "celeba")
    assert os.path.dirname(wild.photos[0].path).endswith(celeba.WILD_IMAGES)
    assert [p.relname for p in wild.photos] == [p.relname for p in aligned.photos]
    people = make_people(tmp_path / "people", 0, 3, 2)
    listing = align_folder.read_source(str(people), "folder", test_fraction=0.0)
    assert len(listing.photos) == 6 and {p.split for p in listing.photos} == {"train"}
