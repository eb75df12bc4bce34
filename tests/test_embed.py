"""embed: an output set (embeddings.npy, embeddings.tsv, metadata.tsv) is written
whole or not at all."""
import errno
import json
import os
import shutil

import numpy as np
from PIL import Image

from siamese_graph import fileio
from tests.conftest import SYNTHETIC, blank, cli, make_people, real

OUTPUTS = ("embeddings.npy", "embeddings.tsv", "metadata.tsv")


def test_a_full_disk_keeps_the_earlier_set_whole(tiny_model, tmp_path, monkeypatch):
    small = make_people(tmp_path / "small", 0, 2, 2)
    big = make_people(tmp_path / "big", 5, 4, 3)
    out = tmp_path / "out"
    args = [*SYNTHETIC, "--checkpoint_dir=%s" % tiny_model, "--output_dir=%s" % out]
    r = cli("siamese_graph.embed", *args, "--folder=%s" % small)
    assert r.returncode == 0, r.stderr[-2000:]
    before = {n: (out / n).read_bytes() for n in OUTPUTS}
    assert np.load(out / "embeddings.npy").shape[0] == 4
    # the disk fills while the second of the three files is written
    real_open, opened = fileio.open_file, []

    def filling(path, mode="r"):
        if "w" in mode:
            opened.append(path)
            if len(opened) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_open(path, mode)

    monkeypatch.setattr(fileio, "open_file", filling)
    r = cli("siamese_graph.embed", *args, "--folder=%s" % big)
    monkeypatch.undo()
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: no space left on device")
    assert {n: (out / n).read_bytes() for n in OUTPUTS} == before  # the earlier set, whole
    assert sorted(os.listdir(out)) == sorted(OUTPUTS)  # no temporary file left
    # the control: with room, the new set replaces the old one whole
    r = cli("siamese_graph.embed", *args, "--folder=%s" % big)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = np.load(out / "embeddings.npy").shape[0]
    assert rows == 12 == len((out / "embeddings.tsv").read_text().splitlines())
    assert len((out / "metadata.tsv").read_text().splitlines()) == rows + 1  # its header


def test_embed_and_evaluate_leave_out_photos_without_a_face(tiny_model, face_photos, tmp_path):
    people = str(tmp_path / "people")
    shutil.copytree(face_photos["people"], people, ignore=shutil.ignore_patterns("blank"))
    os.makedirs(os.path.join(people, "blank"))
    Image.fromarray(blank("white")).save(os.path.join(people, "blank", "white.png"))
    r = cli("siamese_graph.embed", "--checkpoint_dir=%s" % tiny_model, "--folder=%s" % people,
                "--output_dir=%s" % (tmp_path / "emb"))
    assert r.returncode == 0, r.stderr[-1500:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["photos"] == 4 and out["no_face"] == [os.path.join(people, "blank", "white.png")]
    assert np.load(tmp_path / "emb" / "embeddings.npy").shape[0] == 4
    ps = real(face_photos)
    lines = [(ps[0], ps[1], 0), (ps[2], ps[3], 0), (ps[0], ps[2], 1), (ps[1], ps[3], 1), (face_photos["black"], ps[0], 0)]
    (tmp_path / "p.txt").write_text("".join("%s\t%s\t%d\n" % x for x in lines))
    r = cli("siamese_graph.evaluate", "--checkpoint_dir=%s" % tiny_model, "--pairs=%s" % (tmp_path / "p.txt"),
                "--folds=2", "--output_dir=%s" % (tmp_path / "ev"))
    assert r.returncode == 0, r.stderr[-1500:]
    report = json.loads(r.stdout)
    assert report["no_face_pairs"] == 1 and report["pairs"] == 4
    # the photo without a face is named, in the report and in a file beside it
    assert report["no_face_photos"] == [face_photos["black"]]
    assert (tmp_path / "ev" / "no_face.txt").read_text() == face_photos["black"] + "\n"
