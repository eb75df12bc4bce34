r"""How often the face step finds a face, set by set, and the close-up copies it is
measured on (issue 37: photos that are a face close-up or a tight crop).

  python bench/face_finding.py --make_copies=/tmp/closeups   # writes tight/ and closeup/
  python bench/face_finding.py --sets=../shared/data/five-celebrities/train,/tmp/closeups/tight,...

--make_copies cuts celeba-mini's test partition (520 photos, 28 people) two ways,
folder-per-person (the identity's number as the folder), from the face box the
commands' detector finds on each photo (photos where it finds none are left out
and counted):
  tight/    the box plus 5% on each side, as it is (RGB JPEG, quality 95)
  mini_test/ the 520 photos as they are (all of them), for --sets and evaluate --folder
  wild/     celeba-mini-wild's 588 whole photos, folder-per-person (symbolic links)
  closeup/  a studio close-up: the box widened by 10%, grown to 92:112 around its
            centre, grayscale, resized to 92x112 (PNG), as the AT&T/ORL faces are
Pixels outside the photo are the photo's edge repeated.

--sets prints, for each folder (folder-per-person, or flat), the photos with a
face found by the commands' aligner (align_graph.Aligner), and for black, white,
gray and noise pictures of several sizes (false faces: want 0).
"""
import os
import shutil
import sys

import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from siamese_graph.data import photos as photos_lib  # noqa: E402
from siamese_graph.faces import align_graph  # noqa: E402

flags.DEFINE_string("make_copies", None, "Write tight/ and closeup/ copies of celeba-mini's test partition here.")
flags.DEFINE_string("mini", "../shared/data/celeba-mini", "celeba-mini (its test partition is cut).")
flags.DEFINE_string("wild", "../shared/data/celeba-mini-wild", "celeba-mini-wild (linked per person).")
flags.DEFINE_string("sets", None, "Comma-separated folders to count faces in.")
FLAGS = flags.FLAGS

EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _cut(rgb, x1, y1, x2, y2):
    """rgb[y1:y2, x1:x2] with integer corners that may lie outside: the edge repeated."""
    h, w = rgb.shape[:2]
    ys = np.clip(np.arange(y1, y2), 0, h - 1)
    xs = np.clip(np.arange(x1, x2), 0, w - 1)
    return rgb[ys][:, xs]


def make_copies(out):
    mini = FLAGS.mini
    ids = dict(line.split() for line in open(os.path.join(mini, "identity_CelebA.txt")))
    test = [line.split()[0] for line in open(os.path.join(mini, "list_eval_partition.txt"))
            if line.split()[1] == "2"]
    aligner = align_graph.Aligner()
    missed = 0
    for name in sorted(test):
        path = os.path.join(mini, "img_align_celeba", name)
        os.makedirs(os.path.join(out, "mini_test", ids[name]), exist_ok=True)
        shutil.copy(path, os.path.join(out, "mini_test", ids[name], name))
        rgb = photos_lib.to_rgb(photos_lib.read(path)[1])
        _, faces = aligner(rgb)
        if not faces:
            missed += 1
            continue
        x1, y1, x2, y2 = faces[0].box
        bw, bh = x2 - x1, y2 - y1
        tight = _cut(rgb, *[int(round(v)) for v in (x1 - 0.05 * bw, y1 - 0.05 * bh, x2 + 0.05 * bw, y2 + 0.05 * bh)])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        w = max(1.1 * bw, 1.1 * bh * 92 / 112)
        h = w * 112 / 92
        close = _cut(rgb, *[int(round(v)) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)])
        close = Image.fromarray(close).convert("L").resize((92, 112), Image.BILINEAR)
        stem = os.path.splitext(name)[0]
        for kind in ("tight", "closeup"):
            os.makedirs(os.path.join(out, kind, ids[name]), exist_ok=True)
        Image.fromarray(tight).save(os.path.join(out, "tight", ids[name], stem + ".jpg"), quality=95)
        close.save(os.path.join(out, "closeup", ids[name], stem + ".png"))
    aligner.close()
    wild_ids = [line.split() for line in open(os.path.join(FLAGS.wild, "identity_CelebA.txt"))]
    for name, identity in wild_ids:
        os.makedirs(os.path.join(out, "wild", identity), exist_ok=True)
        link = os.path.join(out, "wild", identity, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(FLAGS.wild, "img_celeba", name)), link)
    print("wrote %s/tight and %s/closeup: %d photos, %d left out (no face found in the original)"
          % (out, out, len(test) - missed, missed))


def files(folder):
    out = []
    for root, _, names in os.walk(folder):
        out += [os.path.join(root, n) for n in names if n.lower().endswith(EXTS)]
    return sorted(out)


def blanks():
    rng = np.random.RandomState(0)
    for w, h in ((92, 112), (150, 150), (178, 218), (400, 300), (800, 600)):
        yield "black %dx%d" % (w, h), np.zeros((h, w, 3), np.uint8)
        yield "white %dx%d" % (w, h), np.full((h, w, 3), 255, np.uint8)
        yield "gray %dx%d" % (w, h), np.full((h, w, 3), 128, np.uint8)
        yield "noise %dx%d" % (w, h), rng.randint(0, 256, (h, w, 3)).astype(np.uint8)


def count(sets):
    aligner = align_graph.Aligner()
    print("| set | photos | with a face | without |")
    print("|---|---|---|---|")
    for folder in sets:
        paths = files(folder)
        none = [p for p in paths if not aligner(photos_lib.to_rgb(photos_lib.read(p)[1]))[1]]
        print("| %s | %d | %d (%.1f%%) | %s |" % (folder, len(paths), len(paths) - len(none),
                                                   100.0 * (len(paths) - len(none)) / max(1, len(paths)),
                                                   " ".join(os.path.relpath(p, folder) for p in none[:8])
                                                   + (" ..." if len(none) > 8 else "")))
    false = [name for name, rgb in blanks() if aligner(rgb)[1]]
    print("| black, white, gray, noise pictures (5 sizes) | 20 | %d | %s |" % (len(false), " ".join(false)))
    aligner.close()


def main(argv):
    del argv
    if FLAGS.make_copies:
        make_copies(FLAGS.make_copies)
    if FLAGS.sets:
        count(FLAGS.sets.split(","))


if __name__ == "__main__":
    app.run(main)
