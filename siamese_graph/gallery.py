r"""Enroll people and identify probe photos: the phone-unlock use.

  python -m siamese_graph.gallery --checkpoint_dir=runs/convnet --enroll=PEOPLE_DIR --k=5 --gallery=g.npz
  python -m siamese_graph.gallery --checkpoint_dir=runs/convnet --gallery=g.npz PROBE.jpg [PROBE2.jpg ...]

Enrollment stores the tower features of the first k photos (sorted by name) of
each person folder, with the checkpoint's identity (its path, step and a hash of
its weights) and the flip setting; a gallery is refused with any other model or
setting. Identification compares a probe with every enrolled photo through the
model's head, scores each person by the mean distance to their photos, and
answers the nearest person, or "unknown" when that distance is above the
threshold saved by `evaluate --calibrate` (or --threshold).

Photos go through --align (default mtcnn: detect and align each face). No
verdict without a face: a probe with no face found answers "no_face" (exit status
3 when any probe does); enrollment takes each person's first k photos with a
face and lists the photos it passed over.
"""
import json
import os
import sys
import zipfile

import numpy as np
from absl import flags

from siamese_graph import common_flags, fileio
from siamese_graph.data import photos
from siamese_graph.data.datasets import folder as folder_layout
from siamese_graph.errors import DataError, UserError

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "threshold", "align",
                     "min_face_probability")
flags.DEFINE_string("enroll", None, "Folder-per-person photos to enroll.")
flags.DEFINE_integer("k", 5, "Photos enrolled per person (fewer if a person has fewer).")
flags.DEFINE_string("gallery", None, "Gallery file (.npz) to write with --enroll or to read.")
FLAGS = flags.FLAGS
NO_FACE_EXIT = 3


def enroll(model, root, k, load=photos.load_photo, min_face_probability=0.5):
    """Each person's first k photos with a face.

    Returns (names [P], person index per row [R], features [R, D], files [R],
    passed over [photo paths without a face]). Raises DataError naming a person
    with no photo with a face."""
    names, rows, files, feats, skipped = [], [], [], [], []
    for person, paths in folder_layout.walk(root):
        kept = []
        for i in range(0, len(paths), k):
            if len(kept) >= k:
                break
            chunk = paths[i:i + k]
            f, probs = model.embed([load(p) for p in chunk], with_faces=True)
            for path, row, prob in zip(chunk, f, probs):
                if prob >= min_face_probability and len(kept) < k:
                    kept.append((path, row))
                elif prob < min_face_probability:
                    skipped.append(path)
        if not kept:
            raise DataError("%s: no face found in any of %d photos; nothing to enroll for %s"
                            % (os.path.join(root, person), len(paths), person))
        names.append(person)
        rows += [len(names) - 1] * len(kept)
        files += [p for p, _ in kept]
        feats += [r for _, r in kept]
    return names, np.array(rows), np.array(feats, np.float32), files, skipped


def save_gallery(path, model, names, rows, feats, files):
    with fileio.atomic_write(path, "wb") as f:
        np.savez(f, names=np.array(names), rows=rows, features=feats, files=np.array(files),
                 checkpoint=np.array(os.path.abspath(model.checkpoint)), weights=np.array(model.weights_id),
                 flip_average=np.array(model.flip_average), crop=np.array(model.crop))


def load_gallery(path, model):
    """(names, rows, features) of a gallery enrolled with this model; DataError otherwise."""
    if not os.path.isfile(path):
        raise DataError("%s: gallery file not found" % path)
    try:
        with np.load(path, allow_pickle=False) as g:
            g = {k: g[k] for k in g.files}
        names, rows, feats = list(g["names"]), g["rows"], g["features"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DataError("%s: not a gallery file (%s)" % (path, str(e).splitlines()[0][:100]))
    if (feats.ndim != 2 or rows.ndim != 1 or len(rows) != len(feats) or not len(rows)
            or not np.issubdtype(rows.dtype, np.integer)
            or set(rows.tolist()) != set(range(len(names)))):
        raise DataError("%s: not a gallery file (features, rows and names disagree: %d names, %d rows of "
                        "features, people with rows: %d); enroll again" % (
                            path, len(names), len(feats), len(set(rows.tolist())) if rows.ndim == 1 else 0))
    if not np.isfinite(feats).all():
        raise DataError("%s: not a gallery file (non-finite features); enroll again" % path)
    if "files" in g and len(g["files"]) != len(rows):
        raise DataError("%s: not a gallery file (%d files for %d rows); enroll again" % (path, len(g["files"]), len(rows)))
    if "weights" not in g or str(g["weights"]) != model.weights_id:
        raise DataError("%s: enrolled with another checkpoint (%s); enroll again with %s"
                        % (path, g["checkpoint"] if "checkpoint" in g else "unknown", model.checkpoint))
    if bool(g["flip_average"]) != model.flip_average:
        raise DataError("%s: enrolled with flip_average=%s; verify with the same setting"
                        % (path, bool(g["flip_average"])))
    if "crop" in g and tuple(np.round(g["crop"], 6)) != tuple(np.round(model.crop, 6)):
        raise DataError("%s: enrolled with another crop (%s); verify with the same --crop"
                        % (path, ",".join("%g" % v for v in g["crop"])))
    width = int(model.features.shape[-1])
    if feats.shape[1] != width:
        raise DataError("%s: not a gallery file of this model (features of width %d; the model's are %d); "
                        "enroll again" % (path, feats.shape[1], width))
    return names, rows, feats


def identify(model, names, rows, feats, probe_features, threshold, probe_faces=None, min_face_probability=0.5):
    """[(name, "unknown" or "no_face", nearest name, mean distance)] for each probe row.

    probe_faces: the probes' face probabilities; a probe below min_face_probability
    (or with NaN features) answers "no_face", never a name."""
    out = []
    for i, f in enumerate(probe_features):
        if (probe_faces is not None and not probe_faces[i] >= min_face_probability) or not np.isfinite(f).all():
            out.append(("no_face", "-", float("nan")))
            continue
        d = model.distance(np.repeat(f[None], len(feats), axis=0), feats)
        per_person = np.array([d[rows == p].mean() for p in range(len(names))])
        best = int(per_person.argmin())
        known = threshold is None or per_person[best] <= threshold
        out.append((names[best] if known else "unknown", names[best], float(per_person[best])))
    return out


def main(argv):
    probes = argv[1:]
    if not FLAGS.gallery:
        raise UserError("--gallery is required")
    if FLAGS.enroll:
        if FLAGS.k < 1:
            raise UserError("--k=%d: must be at least 1" % FLAGS.k)
        fileio.check_writable_file(FLAGS.gallery, "gallery")
    elif not probes:
        raise UserError("give probe photos to identify (or --enroll=DIR to build a gallery)")
    for p in probes:
        if not os.path.isfile(p):
            raise DataError("%s: photo not found" % p)
    model = common_flags.restored_model()
    load = common_flags.photo_loader()
    if FLAGS.enroll:
        names, rows, feats, files, skipped = enroll(model, FLAGS.enroll, FLAGS.k, load, FLAGS.min_face_probability)
        save_gallery(FLAGS.gallery, model, names, rows, feats, files)
        print(json.dumps({"gallery": FLAGS.gallery, "people": len(names), "photos": len(files),
                          "no_face": skipped}))
        if not probes:
            return
    names, rows, feats = load_gallery(FLAGS.gallery, model)
    threshold = common_flags.threshold_for(model)
    probe_feats, probe_faces = model.embed([load(p) for p in probes], with_faces=True)
    answers = identify(model, names, rows, feats, probe_feats, threshold, probe_faces, FLAGS.min_face_probability)
    for p, (answer, nearest, dist) in zip(probes, answers):
        if answer == "no_face":
            print("%s\tno_face\tno face found: no answer" % p)
        else:
            print("%s\t%s\tnearest %s\tdistance %.4f" % (p, answer, nearest, dist))
    if any(a == "no_face" for a, _, _ in answers):
        sys.exit(NO_FACE_EXIT)


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
