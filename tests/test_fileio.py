"""fileio: atomic writes, the output-folder checks and the one-writer lock."""
import os
import signal
import subprocess
import sys

import pytest

from siamese_graph import fileio
from siamese_graph.errors import ArgumentError, DataError
from tests.conftest import REPO, cli, make_people

HOLD = "import sys, time; sys.path.insert(0, %r)\nfrom siamese_graph import fileio\n" \
       "with fileio.exclusive(sys.argv[1], 'holder'):\n    print('held', flush=True)\n    time.sleep(600)\n" % REPO


def test_atomic_write_leaves_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "f.txt"
    fileio.write_text(str(path), "old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_write(str(path)) as f:
            f.write("new, half")
            raise RuntimeError
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_output_inside_the_data_folder_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="must be outside --data_dir"):
        fileio.check_output_outside(str(tmp_path), str(tmp_path / "out"))
    fileio.check_output_outside(str(tmp_path / "data"), str(tmp_path / "out"))


def test_one_writer_and_no_stuck_lock_after_kill_9(tmp_path):
    folder = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(DataError, match=r"out: another make_records is writing here \(pid %d\)" % p.pid):
            with fileio.exclusive(str(folder), "make_records"):
                pass
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    with fileio.exclusive(str(folder), "make_records"):  # the kernel dropped the killed holder's lock
        assert (folder / ".lock").read_text().strip() == str(os.getpid())


def test_a_refused_run_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError):
        with fileio.exclusive(str(tmp_path / "new"), "x"):
            raise ValueError
    assert not (tmp_path / "new").exists()


def test_two_make_records_at_once(tmp_path):
    src = make_people(tmp_path / "people", 0, 4, 3)
    out = tmp_path / "rec"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % src, "--output_dir=%s" % out)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "another make_records is writing here" in r.stderr.strip().splitlines()[-1]
        assert os.listdir(out) == [".lock"]  # nothing written beside the holder
    finally:
        p.kill()
        p.wait()
    r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % src, "--output_dir=%s" % out)
    assert r.returncode == 0, r.stderr[-1500:]
    # --overwrite removes make_records' own files, never the lock it holds while it runs
    r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % src, "--output_dir=%s" % out,
                "--overwrite")
    assert r.returncode == 0 and (out / ".lock").exists(), r.stderr[-1500:]
