"""siamese-score: pairs and two photos, never "same" without a face."""
import json

import pytest

from tests.conftest import ANY_DISTANCE, BLANKS, cli, real


@pytest.mark.parametrize("align", ["mtcnn", "none"])
def test_score_never_says_same_without_a_face(tiny_model, face_photos, tmp_path, align):
    # the controls: real pairs, given as each path expects them (whole face_photos to detect,
    # or aligned faces), get a verdict; only the blank pictures get none
    people = real(face_photos, aligned=align == "none")
    pairs = [(face_photos[k], people[i % len(people)]) for i, k in enumerate(BLANKS)]
    pairs += [(people[0], people[1]), (people[2], people[3])]
    (tmp_path / "pairs.txt").write_text("".join("%s\t%s\n" % p for p in pairs))
    r = cli("siamese_graph.score", "--checkpoint_dir=%s" % tiny_model, "--pairs=%s" % (tmp_path / "pairs.txt"),
                "--format=json", ANY_DISTANCE, "--align=%s" % align)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["pairs"]
    verdicts = [row["verdict"] for row in rows]
    assert verdicts[:4] == ["no_face"] * 4
    assert verdicts[4:] == ["same", "same"]  # real faces pass: the threshold would say same
    # every photo without a face named, not only counted
    blanks = sorted(face_photos[k] for k in BLANKS)
    assert json.loads(r.stdout)["no_face"] == blanks
    assert "no face found in 4 photos (their pairs: no_face): %s" % " ".join(blanks) in r.stderr
    # two face_photos: the blank one is named, a distinct exit status, no verdict on stdout
    r = cli("siamese_graph.score", "--checkpoint_dir=%s" % tiny_model, ANY_DISTANCE, "--align=%s" % align,
                face_photos["gray"], people[0])
    assert r.returncode == 3 and "no face found in %s" % face_photos["gray"] in r.stderr, r.stderr[-1500:]
    assert "same" not in r.stdout
