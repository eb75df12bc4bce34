"""Flags: one definition each, one default each, the documented ones; every command installed and answering --help."""
import ast
import importlib
import os
import re
import shutil
import subprocess
import sys

import pytest
from absl import flags

from tests.conftest import REPO, SYNTHETIC, cli, face

COMMANDS = ["make_records", "inspect_pairs", "train", "evaluate", "score", "gallery", "embed", "export", "data_service",
            "align"]
MODULES = {c: "siamese_graph." + c for c in COMMANDS}
FLAGS = flags.FLAGS


def _source(command):
    return os.path.join(REPO, *MODULES[command].split(".")) + ".py"


def _import_all():
    return {c: importlib.import_module(MODULES[c]) for c in COMMANDS}


def _readme_shared_flags():
    """{flag: (default text, [commands])} from the shared-flag table of docs/commands.md
    (the README points there)."""
    text = open(os.path.join(REPO, "docs", "commands.md"), encoding="utf-8").read()
    section = text.split("## Shared flags", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `--(\w+)` \| `?([^|`]*)`? \| ([^|]+) \|", section, re.M)
    return {name: (default.strip(), [c.strip() for c in used.split(",")]) for name, default, used in rows}


def _as_text(value):
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return "%g" % value if isinstance(value, float) else str(value)


def test_every_flag_defined_once_by_one_module():
    _import_all()  # all commands in one process: a second definition would raise here
    owners = {}
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if not module.startswith("siamese_graph"):
            continue
        for f in module_flags:
            owners.setdefault(f.name, set()).add(module)
    assert owners, "no project flags found"
    assert {n: m for n, m in owners.items() if len(m) > 1} == {}
    # a flag defined in a command module is used by that command only; train's flags
    # (train_flags) are train's, and inspect_pairs reads them from a flag file
    for name, (module,) in owners.items():
        if module != "siamese_graph.common_flags":
            users = [c for c in COMMANDS
                     if name in {f.name for f in FLAGS.get_key_flags_for_module(MODULES[c])}]
            owner = "siamese_graph.train" if module == "siamese_graph.train_flags" else module
            assert [MODULES[u] for u in users] == [owner], (name, users)


def test_commands_never_import_each_other():
    for c in COMMANDS:
        tree = ast.parse(open(_source(c)).read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module.rsplit(".", 1)[-1]} | {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name.rsplit(".", 1)[-1] for a in node.names}
        others = {"siamese_graph." + o for o in set(COMMANDS) - {c}}
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        modules |= {node.module + "." + a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module for a in node.names}
        assert not modules & others, (c, modules & others)
        assert "__main__" not in imported, c


def test_library_modules_never_read_flags_or_set_logging():
    stages = ("data", "faces", "model", "training", "inference", "serving")
    library = ["fileio", "netns", "progress"] + sorted(
        os.path.relpath(os.path.join(d, f), os.path.join(REPO, "siamese_graph"))[:-3]
        for stage in stages for d, _, fs in os.walk(os.path.join(REPO, "siamese_graph", stage))
        for f in fs if f.endswith(".py"))
    assert len(library) > 30, library
    for name in library:
        src = open(os.path.join(REPO, "siamese_graph", name + ".py")).read()
        assert "FLAGS" not in src and "absl import flags" not in src, name
        assert "set_verbosity" not in src, name
        assert "UserError" not in src, name  # the library's errors are DataError and ArgumentError
        raised = [c.value for node in ast.walk(ast.parse(src)) if isinstance(node, ast.Raise)
                  for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
        if name != "training/cluster":  # resolve() parses the cluster flags and TF_CONFIG: it names them
            assert not [t for t in raised if re.search(r"--[a-z]", t)], name  # no flag names in its errors


def test_shared_flags_match_the_readme_table():
    modules = _import_all()
    documented = _readme_shared_flags()
    shared = {f.name for f in FLAGS.flags_by_module_dict()["siamese_graph.common_flags"]}
    assert set(documented) == shared
    for name, (default, users) in documented.items():
        assert _as_text(FLAGS[name].default) == default, (name, FLAGS[name].default, default)
        declared = [c for c in COMMANDS
                    if FLAGS[name] in FLAGS.get_key_flags_for_module(modules[c].__name__)]
        assert sorted(declared) == sorted(users), (name, declared, users)


def test_install_brings_what_the_readme_uses():
    import matplotlib  # noqa: F401  evaluate's PNGs
    import tensorboard  # noqa: F401  `tensorboard --logdir runs`
    assert shutil.which("tensorboard"), "the tensorboard command is not installed"


@pytest.mark.parametrize("command", COMMANDS)
def test_console_script_help_lists_its_flags(command):
    script = shutil.which("siamese-" + command.replace("_", "-"))
    assert script, "siamese-%s is not installed (pip install -e .)" % command.replace("_", "-")
    r = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert "USAGE" in r.stdout, r.stderr[-2000:]  # absl's --help exits 1 after printing
    module = importlib.import_module(MODULES[command])
    own = {f.name for f in FLAGS.get_key_flags_for_module(module.__name__)}
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+)", r.stdout, re.M))
    assert own and own <= listed, own - listed
    m = subprocess.run([sys.executable, "-m", MODULES[command], "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert set(re.findall(r"^  --(?:\[no\])?(\w+)", m.stdout, re.M)) == listed


@pytest.mark.parametrize("command", ["score", "gallery", "export", "evaluate", "embed"])
def test_nonsense_thresholds_are_refused_by_every_command(tiny_model, tmp_path, command):
    """NaN, infinite, negative and 0 are refused by every command in one line before
    anything is written or printed; a good threshold goes through score, gallery and
    export (the control), and evaluate and embed, which make no verdicts, refuse it."""
    argv = _threshold_commands(tiny_model, tmp_path)[command]
    outputs = [tmp_path / out for out in ("g.npz", "x", "e", "m")]
    for value in ("nan", "inf", "-inf", "-1", "0"):
        r = cli("siamese_graph." + command, *argv, "--threshold=%s" % value)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (command, value, r.stderr[-1500:])
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: flag --threshold=%s" % float(value)), (command, value, last)
        assert "must be a finite" in last, (command, value, last)
        assert not r.stdout.strip() and not any(o.exists() for o in outputs), (command, r.stdout)
    assert not os.path.exists(os.path.join(tiny_model, "threshold.json"))
    r = cli("siamese_graph." + command, *argv, "--threshold=0.5")
    if command in ("evaluate", "embed"):
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last.startswith("error: --threshold=0.5: %s takes no threshold" % command), last
        assert not any(o.exists() for o in outputs)
    else:
        assert r.returncode == 0, (command, r.stderr[-1500:])
        assert any(o.exists() for o in outputs) or "different" in r.stdout or "same" in r.stdout


def _threshold_commands(model, tmp_path):
    """Each command's argv (without --threshold) on synthetic photos, and a check of what it wrote."""
    people = tmp_path / "people"
    for i, person in enumerate(("p0", "p1")):
        (people / person).mkdir(parents=True)
        for k in range(2):
            face(i + 1, k).save(people / person / ("%d.png" % k))
    a, b = str(people / "p0" / "0.png"), str(people / "p1" / "0.png")
    ckpt = "--checkpoint_dir=%s" % model
    return {
        "score": [*SYNTHETIC, ckpt, a, b],
        "gallery": [*SYNTHETIC, ckpt, "--enroll=%s" % people, "--k=1", "--gallery=%s" % (tmp_path / "g.npz")],
        "export": [ckpt, "--output_dir=%s" % (tmp_path / "x")],
        "evaluate": [*SYNTHETIC, ckpt, "--folder=%s" % people, "--kshot=1", "--episodes=2",
                     "--output_dir=%s" % (tmp_path / "e")],
        "embed": [*SYNTHETIC, ckpt, "--folder=%s" % people, "--output_dir=%s" % (tmp_path / "m")],
    }
