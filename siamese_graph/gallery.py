r"""Enroll people and identify probe photos: the phone-unlock use.

  python -m siamese_graph.gallery --checkpoint_dir=runs/convnet --enroll=PEOPLE_DIR --k=5 --gallery=g.npz
  python -m siamese_graph.gallery --checkpoint_dir=runs/convnet --gallery=g.npz PROBE.jpg [PROBE2.jpg ...]

Enrollment stores the tower features of the first k photos (sorted by name) of
each person folder. Identification compares a probe with every enrolled photo
through the model's head, scores each person by the mean distance to their
photos, and answers the nearest person, or "unknown" when that distance is above
the threshold saved by `evaluate --calibrate` (or --threshold).
"""
import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags

from siamese_graph import inference
from siamese_graph.cli import define, run_main
from siamese_graph.errors import UserError

inference.define_flags()
flags.DEFINE_string("enroll", None, "Folder-per-person photos to enroll.")
flags.DEFINE_integer("k", 5, "Photos enrolled per person (fewer if a person has fewer).")
flags.DEFINE_string("gallery", None, "Gallery file (.npz) to write with --enroll or to read.")
define("float", "threshold", None, "Override the calibrated threshold.")
FLAGS = flags.FLAGS


def enroll(model, folder, k):
    """Returns (names [P], person index per row [R], features [R, D], files [R])."""
    if not os.path.isdir(folder):
        raise UserError("%s: folder not found" % folder)
    names, rows, files = [], [], []
    for person in sorted(os.listdir(folder)):
        d = os.path.join(folder, person)
        if not os.path.isdir(d) or person.startswith("."):
            continue
        photos = sorted(f for f in os.listdir(d) if not f.startswith("."))[:k]
        if photos:
            names.append(person)
            rows += [len(names) - 1] * len(photos)
            files += [os.path.join(d, f) for f in photos]
    if not names:
        raise UserError("%s: no person folders with photos" % folder)
    feats = model.embed([inference.load_photo(f) for f in files])
    return names, np.array(rows), feats, files


def save_gallery(path, model, names, rows, feats, files):
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp.npz")
    np.savez(tmp, names=np.array(names), rows=rows, features=feats, files=np.array(files),
             checkpoint=np.array(model.checkpoint), flip_average=np.array(model.flip_average))
    os.replace(tmp, path)


def load_gallery(path, model):
    if not os.path.isfile(path):
        raise UserError("%s: gallery file not found" % path)
    try:
        g = np.load(path)
        names, rows, feats = list(g["names"]), g["rows"], g["features"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError("%s: not a gallery file (%s)" % (path, e))
    if feats.shape[1] != model.features.shape[-1]:
        raise UserError("%s: enrolled with another model (features of size %d)" % (path, feats.shape[1]))
    if "flip_average" in g and bool(g["flip_average"]) != model.flip_average:
        raise UserError("%s: enrolled with --flip_average=%s; verify with the same setting"
                        % (path, bool(g["flip_average"])))
    return names, rows, feats


def identify(model, names, rows, feats, probe_features, threshold):
    """[(name or "unknown", nearest name, mean distance)] for each probe row."""
    out = []
    for f in probe_features:
        d = model.distance(np.repeat(f[None], len(feats), axis=0), feats)
        per_person = np.array([d[rows == p].mean() for p in range(len(names))])
        best = int(per_person.argmin())
        known = threshold is None or per_person[best] <= threshold
        out.append((names[best] if known else "unknown", names[best], float(per_person[best])))
    return out


def main(argv):
    tf.compat.v1.disable_eager_execution()
    probes = argv[1:]
    if not FLAGS.checkpoint_dir or not FLAGS.gallery:
        raise UserError("--checkpoint_dir and --gallery are required")
    model = inference.model_from_flags()
    if FLAGS.enroll:
        if FLAGS.k < 1:
            raise UserError("--k must be at least 1")
        names, rows, feats, files = enroll(model, FLAGS.enroll, FLAGS.k)
        save_gallery(FLAGS.gallery, model, names, rows, feats, files)
        print(json.dumps({"gallery": FLAGS.gallery, "people": len(names), "photos": len(files)}))
        if not probes:
            return
    if not probes:
        raise UserError("give probe photos to identify (or --enroll=DIR to build a gallery)")
    names, rows, feats = load_gallery(FLAGS.gallery, model)
    threshold = FLAGS.threshold if FLAGS.threshold is not None else model.threshold()
    probe_feats = model.embed([inference.load_photo(p) for p in probes])
    for p, (answer, nearest, dist) in zip(probes, identify(model, names, rows, feats, probe_feats, threshold)):
        print("%s\t%s\tnearest %s\tdistance %.4f" % (p, answer, nearest, dist))


if __name__ == "__main__":
    app.run(run_main(main))
