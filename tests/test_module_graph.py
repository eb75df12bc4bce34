"""The house: the module graph has no cycle and no import up a layer, docs/modules.md
is drawn from today's imports, no module is over 400 lines, and each module has its
test file."""
import importlib.util
import os

from tests.conftest import REPO


def _graph_script():
    spec = importlib.util.spec_from_file_location("module_graph", os.path.join(REPO, "docs", "module_graph.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_and_no_import_up_a_layer():
    g = _graph_script()
    edges = g.imports(g.modules())
    assert g.problems(edges) == []
    # the control: the rules catch what they are for
    bad = dict(edges, **{"data.records": edges["data.records"] + ["training.graphs"]})
    assert "data.records imports training.graphs, a layer above it" in g.problems(bad)
    looped = dict(edges, **{"errors": ["fileio"], "fileio": edges["fileio"] + ["errors"]})
    assert any(p.startswith("cycle:") for p in g.problems(looped))


def test_modules_md_is_drawn_from_todays_imports():
    g = _graph_script()
    mods = g.modules()
    assert open(g.OUT).read() == g.render(g.imports(mods), mods), "run python docs/module_graph.py"


def test_no_module_over_400_lines():
    g = _graph_script()
    long = {m: n for m, p in g.modules().items() if (n := sum(1 for _ in open(p))) > 400}
    assert long == {}


def test_each_module_has_its_test_file():
    """siamese_graph/<stage>/<module>.py is tested in tests/<stage>/test_<module>.py (the
    commands, at the top, in tests/test_<command>.py)."""
    g = _graph_script()
    missing = []
    for name, source in g.modules().items():
        parts = name.split(".")
        if source.endswith("__init__.py"):  # a package's namespace, tested through its modules
            continue
        path = os.path.join(REPO, "tests", *parts[:-1], "test_%s.py" % parts[-1])
        if not os.path.exists(path):
            missing.append(os.path.relpath(path, REPO))
    assert missing == []
