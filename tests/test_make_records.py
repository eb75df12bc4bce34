"""make_records: readers, sharding, bad input, determinism, resume; real data at the end."""
import os
import signal
import subprocess
import sys
import time

from siamese_graph.data import records
from tests.conftest import REPO, cli, make_celeba, shared

# --- unit tests on synthetic fixtures -------------------------------------------------


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    src = tmp_path / "src"
    make_celeba(src, [2, 2])
    (src / "identity_CelebA.txt").write_text("000001.jpg 1\n000002.jpg 1\nbroken line here\n")
    r = cli("siamese_graph.make_records", "--data_dir=%s" % src,
                "--output_dir=%s" % (tmp_path / "out"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "error: %s:3: expected '<photo> <identity>', got 'broken line here'"
        % (src / "identity_CelebA.txt"))
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_kill_during_run_then_rerun_gives_same_shards(tmp_path):
    src = shared("celeba-mini")
    args = ["--data_dir=%s" % src, "--num_workers=1", "--num_shards=16"]
    ref = cli("siamese_graph.make_records", *args, "--output_dir=%s" % (tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "siamese_graph.make_records", *args,
                             "--output_dir=%s" % out], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few shards are complete, mid-way through
        done = [n for n in os.listdir(out / ".progress")] if (out / ".progress").is_dir() else []
        if len([n for n in done if n.endswith(".json")]) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = os.listdir(out)
    assert records.MANIFEST not in left
    complete = [n for n in left if n.endswith(".tfrecord")]
    assert 3 <= len(complete) < 32, left  # killed mid-way
    for n in complete:  # whatever looks complete is complete
        assert (out / n).read_bytes() == (tmp_path / "ref" / n).read_bytes()
    rerun = cli("siamese_graph.make_records", *args, "--output_dir=%s" % out)
    assert rerun.returncode == 0, rerun.stderr
    assert "shards complete from an earlier run" in rerun.stderr
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "ref"))
    for n in os.listdir(out):
        if n != ".lock":  # the one-writer lock holds its last holder's pid
            assert (out / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n


# --- integration on real data ------------------------------------------------------


