"""gallery: an edited gallery file is refused in one line (names against rows)."""
import json
import os
import shutil

import numpy as np

from tests.conftest import ANY_DISTANCE, BLANKS, SYNTHETIC, cli, make_people, real


def enrolled(model, tmp_path):
    """(people folder, gallery file, the gallery's arrays) of 3 synthetic people, 2 photos each."""
    people = make_people(tmp_path / "people", 0, 3, 2)
    g = tmp_path / "g.npz"
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % model, "--enroll=%s" % people,
            "--k=2", "--gallery=%s" % g)
    assert r.returncode == 0, r.stderr[-2000:]
    with np.load(g) as f:
        return people, g, {k: f[k] for k in f.files}


def test_a_gallery_with_a_name_added_is_refused(tiny_model, tmp_path):
    people, g, parts = enrolled(tiny_model, tmp_path)
    parts["names"] = np.append(parts["names"], "ghost")  # a name with no enrolled photo
    ghost = tmp_path / "ghost.npz"
    np.savez(ghost, **parts)
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % tiny_model, "--gallery=%s" % ghost,
                str(people / "p1" / "0.png"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "names, rows and names disagree" not in r.stderr  # the message says which
    assert "features, rows and names disagree: 4 names" in r.stderr.strip().splitlines()[-1]
    assert "ghost" not in r.stdout and "nan" not in r.stdout


def test_a_gallery_with_features_of_another_width_is_refused(tiny_model, tmp_path):
    people, g, parts = enrolled(tiny_model, tmp_path)
    width = parts["features"].shape[1]
    parts["features"] = parts["features"][:, :5]  # an edited gallery: 5 numbers a photo
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, **parts)
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % tiny_model, "--gallery=%s" % narrow,
            str(people / "p1" / "0.png"))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert last == ("error: %s: not a gallery file of this model (features of width 5; the model's are %d); "
                    "enroll again" % (narrow, width)), last
    # the control: the gallery as enrolled names the probe
    r = cli("siamese_graph.gallery", *SYNTHETIC, "--checkpoint_dir=%s" % tiny_model, "--gallery=%s" % g,
            str(people / "p1" / "0.png"))
    assert r.returncode == 0 and "p1" in r.stdout, r.stdout + r.stderr[-1000:]


def test_gallery_names_nobody_without_a_face(tiny_model, face_photos, tmp_path):
    g = tmp_path / "g.npz"
    people = str(tmp_path / "people")
    shutil.copytree(face_photos["people"], people)
    r = cli("siamese_graph.gallery", "--checkpoint_dir=%s" % tiny_model, "--enroll=%s" % people,
                "--gallery=%s" % g, "--k=2", ANY_DISTANCE)
    # the "blank" folder has no face: nothing to enroll for it, said in one line
    assert r.returncode == 1 and "no face found in any of 1 photos" in r.stderr, r.stderr[-1500:]
    shutil.rmtree(os.path.join(people, "blank"))
    r = cli("siamese_graph.gallery", "--checkpoint_dir=%s" % tiny_model, "--enroll=%s" % people,
                "--gallery=%s" % g, "--k=2", ANY_DISTANCE)
    assert r.returncode == 0, r.stderr[-1500:]
    assert json.loads(r.stdout.splitlines()[0])["people"] == 2
    probes = [face_photos[k] for k in BLANKS] + real(face_photos)[:1]
    r = cli("siamese_graph.gallery", "--checkpoint_dir=%s" % tiny_model, "--gallery=%s" % g, ANY_DISTANCE, *probes)
    assert r.returncode == 3, r.stderr[-1500:]
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    for k in BLANKS:
        assert lines[face_photos[k]].startswith("no_face"), lines
    assert not lines[real(face_photos)[0]].startswith(("no_face", "unknown"))  # the real face gets a name
