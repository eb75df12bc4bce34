"""siamese_graph.align: the similarity transform, the warp, detection on real photos,
several faces, no face, and the siamese-align command (manifest, resume after kill -9)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from siamese_graph.faces import align
from tests.conftest import REPO, cli, shared

WILD = ["182709.jpg", "182734.jpg", "182757.jpg", "185380.jpg", "186240.jpg"]


def _wild(name):
    return np.asarray(Image.open(os.path.join(shared("celeba-mini-wild"), "img_celeba", name)).convert("RGB"))


def _wild_subset(root, names, extra_blank=True):
    """A CelebA in-the-wild layout with some celeba-mini-wild photos (and a blank one)."""
    src = shared("celeba-mini-wild")
    os.makedirs(root / "img_celeba")
    ids = dict(line.split() for line in open(os.path.join(src, "identity_CelebA.txt")))
    rows = [(n, ids[n]) for n in names]
    for n in names:
        shutil.copy(os.path.join(src, "img_celeba", n), root / "img_celeba" / n)
    if extra_blank:
        Image.new("RGB", (300, 240), (128, 128, 128)).save(root / "img_celeba" / "999999.jpg")
        rows.append(("999999.jpg", rows[0][1]))
    (root / "identity_CelebA.txt").write_text("".join("%s %s\n" % r for r in rows))
    (root / "list_eval_partition.txt").write_text("".join("%s 2\n" % n for n, _ in rows))
    return root


def test_align_command_manifest_and_layout(tmp_path):
    src = _wild_subset(tmp_path / "wild", WILD)
    out = tmp_path / "aligned"
    r = cli("siamese_graph.align", "--data_dir=%s" % src, "--output_dir=%s" % out, "--num_workers=2")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["aligned"] == len(WILD) and summary["no_face"] == 1
    m = json.load(open(out / "align_manifest.json"))
    by = {e["photo"]: e for e in m["photos"]}
    assert by["999999.jpg"]["status"] == "no_face"
    for n in WILD:
        e = by[n]
        assert e["status"] == "aligned" and e["confidence"] >= 0.9 and len(e["points"]) == 5 and e["faces"] >= 1
        assert Image.open(out / "img_align_celeba" / n).size == (178, 218)
    assert not (out / "img_align_celeba" / "999999.jpg").exists()
    listed = [line.split()[0] for line in open(out / "identity_CelebA.txt")]
    assert sorted(listed) == sorted(WILD)  # make_records reads exactly the aligned photos
    # the output is ready for make_records
    r = cli("siamese_graph.make_records", "--data_dir=%s" % out, "--output_dir=%s" % (tmp_path / "rec"),
                "--num_workers=1")
    assert r.returncode == 0 and "listed but missing: 0" in r.stdout, r.stderr[-1500:]
    # a second run is complete already: nothing aligned again
    r = cli("siamese_graph.align", "--data_dir=%s" % src, "--output_dir=%s" % out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.load(open(out / "align_manifest.json"))["aligned_this_run"] == 0


def test_align_command_refuses_what_make_records_refuses(tmp_path):
    src = _wild_subset(tmp_path / "wild", WILD[:1], extra_blank=False)
    cases = [
        (["--data_dir=%s" % (tmp_path / "nope"), "--output_dir=%s" % (tmp_path / "o")], "data folder not found"),
        (["--data_dir=%s" % src, "--output_dir=%s" % (src / "inside")], "must be outside --data_dir"),
        (["--data_dir=%s" % src, "--output_dir=%s" % (tmp_path / "o"), "--min_confidence=2"], "--min_confidence=2: must be in [0, 1]"),
        (["--data_dir=%s" % src, "--output_dir=%s" % (tmp_path / "o"), "--aligned_scale=2"], "--aligned_scale=2: must be in [0.1, 1]"),
    ]
    with open(src / "identity_CelebA.txt", "a") as f:
        f.write("000001.jpg 7\n")
    with open(src / "list_eval_partition.txt", "a") as f:
        f.write("000001.jpg 2\n")
    cases.append((["--data_dir=%s" % src, "--output_dir=%s" % (tmp_path / "o")], "listed photos are missing"))
    for args, expected in cases:
        r = cli("siamese_graph.align", *args)
        assert r.returncode == 1 and expected in r.stderr, (args, r.stderr[-800:])
        assert "Traceback" not in r.stderr
        assert len([l for l in r.stderr.splitlines() if l.startswith("error:")]) == 1


def _complete_journal_entries(journal):
    entries = []
    for line in journal.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            pass
    return entries


def test_align_resumes_after_kill_9(tmp_path):
    names = sorted(os.listdir(os.path.join(shared("celeba-mini-wild"), "img_celeba")))[:14]
    src = _wild_subset(tmp_path / "wild", names, extra_blank=False)
    out = tmp_path / "aligned"
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.Popen([sys.executable, "-m", "siamese_graph.align", "--data_dir=%s" % src,
                          "--output_dir=%s" % out, "--num_workers=1"], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journal = out / ".align-journal.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and p.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        assert p.poll() is None, "finished before it could be killed"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
    journaled = _complete_journal_entries(journal)  # a kill may leave half a last line
    assert len(journaled) >= 3
    assert not (out / "align_manifest.json").exists()
    # nothing half-written under a final name: every visible photo decodes whole, every
    # photo the journal calls aligned is there, and a hidden file is only the temporary
    # name of a photo in flight (not journaled)
    on_disk = os.listdir(out / "img_align_celeba")
    visible = [f for f in on_disk if not f.startswith(".")]
    for f in visible:
        Image.open(out / "img_align_celeba" / f).load()
    assert {e["photo"] for e in journaled if e["status"] == "aligned"} <= set(visible)
    in_flight = {f[1:-len(".tmp")] for f in on_disk if f.startswith(".")}
    assert all(f.startswith(".") and f.endswith(".tmp") for f in on_disk if f not in visible), on_disk
    assert not in_flight & {e["photo"] for e in journaled}, in_flight
    r = cli("siamese_graph.align", "--data_dir=%s" % src, "--output_dir=%s" % out, "--num_workers=1")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(out / "align_manifest.json"))
    assert m["photos_total"] == len(names)
    # resumed, not redone: exactly the photos without a complete journal line are done now
    assert m["aligned_this_run"] == len(names) - len({e["photo"] for e in journaled})
    aligned = [e["photo"] for e in m["photos"] if e["status"] == "aligned"]
    assert sorted(os.listdir(out / "img_align_celeba")) == sorted(aligned)  # no temp files left, all present
    for n in aligned:
        Image.open(out / "img_align_celeba" / n).load()  # each one whole


def test_make_records_aligns_in_the_wild_photos_through_the_same_code(tmp_path):
    src = _wild_subset(tmp_path / "wild", WILD)
    r = cli("siamese_graph.make_records", "--data_dir=%s" % src, "--output_dir=%s" % (tmp_path / "plain"))
    assert r.returncode == 1 and "img_celeba/ holds in-the-wild photos: align them first" in r.stderr
    out = tmp_path / "rec"
    r = cli("siamese_graph.make_records", "--data_dir=%s" % src, "--output_dir=%s" % out, "--align_faces",
                "--num_workers=1")
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["splits"]["test"]["photos"] == len(WILD)  # the blank one has no face: not a record
    m = json.load(open(out / "aligned" / "align_manifest.json"))
    assert m["counts"]["no_face"] == 1
    for n in WILD:  # the same aligned faces siamese-align writes
        assert Image.open(out / "aligned" / "img_align_celeba" / n).size == (178, 218)


def test_align_never_writes_into_a_folder_it_did_not_write(tmp_path):
    """An output folder holding someone else's files (an identity file, photos) is
    refused, --overwrite or not, and left as it was."""
    src = _wild_subset(tmp_path / "wild", WILD[:1], extra_blank=False)
    out = tmp_path / "theirs"
    (out / "img_align_celeba").mkdir(parents=True)
    (out / "identity_CelebA.txt").write_text("mine 1\n")
    (out / "img_align_celeba" / WILD[0]).write_bytes(b"my photo")
    for extra in ([], ["--overwrite"]):
        r = cli("siamese_graph.align", "--data_dir=%s" % src, "--output_dir=%s" % out, "--num_workers=1", *extra)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last == ("error: %s holds files siamese-align did not write "
                                              "(identity_CelebA.txt, img_align_celeba): choose another output folder"
                                              % out), last
    assert (out / "identity_CelebA.txt").read_text() == "mine 1\n"
    assert (out / "img_align_celeba" / WILD[0]).read_bytes() == b"my photo"
    assert sorted(os.listdir(out)) == ["identity_CelebA.txt", "img_align_celeba"]  # no lock, config or journal left


def test_two_photos_differing_only_in_extension_are_both_kept(tmp_path):
    """pA/x.jpg and pA/x.png: two aligned photos (x.jpg, x.png.jpg), each in the manifest
    with its own output, none lost; 1000 workers asked for, as many as the CPUs run."""
    wild = os.path.join(shared("celeba-mini-wild"), "img_celeba")
    src = tmp_path / "people"
    (src / "pA").mkdir(parents=True)
    shutil.copy(os.path.join(wild, WILD[0]), src / "pA" / "x.jpg")
    Image.open(os.path.join(wild, WILD[1])).save(src / "pA" / "x.png")
    out = tmp_path / "aligned"
    r = cli("siamese_graph.align", "--dataset=folder", "--data_dir=%s" % src, "--output_dir=%s" % out,
            "--test_fraction=0", "--num_workers=1000")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "workers, not 1000" in r.stderr
    m = json.load(open(out / "align_manifest.json"))
    outputs = {e["photo"]: e["output"] for e in m["photos"] if e["status"] == "aligned"}
    assert outputs == {os.path.join("pA", "x.jpg"): os.path.join("pA", "x.jpg"),
                       os.path.join("pA", "x.png"): os.path.join("pA", "x.png.jpg")}
    a, b = (np.asarray(Image.open(out / o)).astype(int) for o in sorted(outputs.values()))
    assert np.abs(a - b).mean() > 10  # two different faces, both on disk


def test_detection_memory_is_bounded_whatever_the_flags(tmp_path):
    """--max_side=0 ("full size") ran MTCNN on a 72-megapixel photo (over 6 GB): the
    command takes 48..MAX_DETECT_SIDE, and the library never detects above it."""
    src = _wild_subset(tmp_path / "wild", WILD[:1], extra_blank=False)
    for bad in ("0", "10000"):
        r = cli("siamese_graph.align", "--data_dir=%s" % src, "--output_dir=%s" % (tmp_path / "o"),
                "--max_side=%s" % bad)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last.startswith("error: --max_side=%s: must be in 48..%d" % (
            bad, align.MAX_DETECT_SIDE)), last
    assert align.Detector(max_side=0).max_side == align.MAX_DETECT_SIDE
    assert align.Detector(max_side=10 ** 6).max_side == align.MAX_DETECT_SIDE


def test_align_with_beam_writes_what_the_local_run_writes(tmp_path):
    """--runner=beam (Apache Beam's DirectRunner here): the same aligned photos byte
    for byte, the same identity and partition files, the same manifest but its time."""
    pytest.importorskip("apache_beam", reason="Beam is an extra: pip install '.[beam]'")
    src = _wild_subset(tmp_path / "wild", WILD)
    outs = {}
    for runner in ("local", "beam"):
        outs[runner] = tmp_path / runner
        r = cli("siamese_graph.align", "--data_dir=%s" % src, "--output_dir=%s" % outs[runner],
                "--runner=%s" % runner)
        assert r.returncode == 0, r.stderr[-2000:]
    files = {runner: sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
             for runner, out in outs.items()}
    assert files["local"] == files["beam"] and len(files["local"]) >= len(WILD) + 3
    for name in files["local"]:
        a, b = (outs["local"] / name).read_bytes(), (outs["beam"] / name).read_bytes()
        if name == "align_manifest.json":
            a, b = [{k: v for k, v in json.loads(x).items() if k != "seconds_this_run"} for x in (a, b)]
        elif name == ".align-journal.jsonl":  # the resume log: one line a photo, in the order photos finish
            a, b = sorted(a.splitlines()), sorted(b.splitlines())
        assert a == b, name
    assert not (outs["beam"] / ".align-beam").exists()
