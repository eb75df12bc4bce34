"""The Python API (api.py): docs/python.md's examples run as written, the packaged
model gives its card's figure, and the API's answers are the commands'."""
import doctest
import json
import os

import numpy as np
import pytest

from siamese_graph.inference import zoo
from tests.conftest import REPO, cli, shared


def test_the_python_page_runs_as_written(monkeypatch):
    shared("celeba-mini-wild")
    shared("five-celebrities")
    monkeypatch.chdir(REPO)
    result = doctest.testfile(os.path.join(REPO, "docs", "python.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 15 and result.failed == 0, result


@pytest.mark.parametrize("model", zoo.names())
def test_each_packaged_model_gives_its_cards_celeba_mini_figure(tmp_path, model):
    """The card's celeba-mini figure is through the default path: the test
    partition's photo files, folder-per-person, each face found and aligned (as
    bench/face_finding.py --make_copies lays them out as mini_test/)."""
    src = shared("celeba-mini")
    ids = dict(line.split() for line in open(os.path.join(src, "identity_CelebA.txt")))
    for line in open(os.path.join(src, "list_eval_partition.txt")):
        name, part = line.split()
        if part == "2":
            os.makedirs(tmp_path / "mini_test" / ids[name], exist_ok=True)
            os.symlink(os.path.join(src, "img_align_celeba", name), tmp_path / "mini_test" / ids[name] / name)
    r = cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % zoo.path(model), "--folder=%s" % (tmp_path / "mini_test"),
            "--num_pairs=6000", "--output_dir=%s" % (tmp_path / "ev"))
    assert r.returncode == 0, r.stderr[-1500:]
    want = zoo.card(model)["figures"]["celeba-mini test"]["auc"]
    assert abs(json.loads(r.stdout)["auc"] - want) <= 0.005


def test_score_without_a_checkpoint_uses_the_packaged_model_and_agrees_with_the_api():
    import siamese_graph as sg

    wild = os.path.join(shared("celeba-mini-wild"), "img_celeba")
    a, b = os.path.join(wild, "182709.jpg"), os.path.join(wild, "186240.jpg")
    r = cli("siamese_graph.score", a, b)
    assert r.returncode == 0 and "using the packaged model convnet-celeba" in r.stderr, r.stderr[-1500:]
    printed = float(r.stdout.split()[1])
    assert abs(printed - sg.distance(a, b)) < 1e-4 and r.stdout.split()[2] == sg.verify(a, b)


def test_a_bad_photo_is_the_commands_error(tmp_path):
    import siamese_graph as sg
    from siamese_graph.errors import DataError

    (tmp_path / "x.jpg").write_bytes(b"not a photo")
    with pytest.raises(DataError, match="x.jpg: unusable photo"):
        sg.verify(str(tmp_path / "x.jpg"), str(tmp_path / "x.jpg"))
    with pytest.raises(DataError, match="uint8 RGB"):
        sg.embed_photos([np.zeros((10, 10), np.float32)])


def test_no_public_name_is_also_a_module_name():
    """A submodule imported later becomes the package's attribute of its name: a
    public function named like a module (`embed`, the command) would turn into it."""
    import importlib
    import pkgutil

    import siamese_graph as sg

    modules = {m.name for m in pkgutil.iter_modules(sg.__path__)}
    assert "embed" in modules and not set(sg.PUBLIC) & modules
    importlib.import_module("siamese_graph.embed")
    assert all(callable(getattr(sg, name)) and not isinstance(getattr(sg, name), type(sg)) for name in sg.PUBLIC)
