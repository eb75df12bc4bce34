"""netns: the local launchers' loopback-only network namespace."""
import os
import subprocess
import sys

import pytest

from siamese_graph import netns
from tests.conftest import REPO


def test_refuses_in_one_line_where_no_namespace_can_be_made(monkeypatch):
    monkeypatch.delenv(netns.INSIDE_ENV, raising=False)
    monkeypatch.delenv(netns.ALLOW_ALL_ENV, raising=False)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    with pytest.raises(netns.NoPrivateNetwork, match="unshare command .* not installed.*%s=1" % netns.ALLOW_ALL_ENV):
        netns.isolate(["x"])
    monkeypatch.setenv(netns.ALLOW_ALL_ENV, "1")
    assert netns.isolate(["x"]) == "all interfaces"


def test_a_launcher_reexecutes_itself_where_only_loopback_exists(tmp_path):
    if netns.can_unshare():
        pytest.skip("no network namespace can be made here: %s" % netns.can_unshare())
    script = tmp_path / "launcher.py"
    script.write_text(
        "import os, socket, sys\n"
        "sys.path.insert(0, %r)\n"
        "from siamese_graph import netns\n"
        "print(os.getpid(), netns.isolate([os.path.abspath(__file__)]), netns.interfaces(), flush=True)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "c = socket.create_connection(s.getsockname(), timeout=5)\n"
        "print('loopback works', os.readlink('/proc/self/ns/net'))\n" % REPO)
    env = {k: v for k, v in os.environ.items() if k not in (netns.INSIDE_ENV, netns.ALLOW_ALL_ENV)}
    p = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    lines = out.splitlines()
    first, last = lines[0].split(" ", 1), lines[-1]
    assert int(first[0]) == p.pid  # the same process, re-executed: signals still reach it
    assert "private ['lo']" in first[1]
    assert last.startswith("loopback works") and last.split()[-1] != os.readlink("/proc/self/ns/net")
