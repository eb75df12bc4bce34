"""Galleries: people enrolled by the features of a few photos each, and probes
identified against them (the phone-unlock use; `siamese-gallery` and the API's
enroll and identify).

A gallery is (names [P], person index per row [R], features [R, D], files [R]); on
disk an .npz with the checkpoint's identity (path, a hash of its weights), the flip
setting and the crop, refused with any other model or setting.
"""
import os
import zipfile

import numpy as np

from siamese_graph import fileio
from siamese_graph.data import photos
from siamese_graph.data.datasets import folder as folder_layout
from siamese_graph.errors import DataError


def walk_people(people):
    """[(name, [paths])] of a folder-per-person path or a {name: [photos]} dict."""
    if isinstance(people, dict):
        return [(str(name), list(paths)) for name, paths in people.items()]
    return folder_layout.walk(people)


def enroll(model, people, k, load=photos.load_photo, min_face_probability=0.5):
    """Each person's first k photos with a face.

    Args:
      people: a folder-per-person path, or {name: [photos]}.

    Returns (names [P], person index per row [R], features [R, D], files [R],
    passed over [photo paths without a face]). Raises DataError naming a person
    with no photo with a face."""
    names, rows, files, feats, skipped = [], [], [], [], []
    for person, paths in walk_people(people):
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
            where = os.path.join(people, person) if isinstance(people, str) else person
            raise DataError("%s: no face found in any of %d photos; nothing to enroll for %s"
                            % (where, len(paths), person))
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
        raise DataError("%s: enrolled with another crop (%s); verify with the same crop"
                        % (path, ",".join("%g" % v for v in g["crop"])))
    width = model.feature_dim
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
