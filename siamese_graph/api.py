"""The Python API: photos in, verdicts out, with the packaged model or your own.

    import siamese_graph as sg
    sg.verify("a.jpg", "b.jpg")          # "same", "different" or "no_face"
    sg.distance("a.jpg", "b.jpg")        # float (nan without a face)
    sg.find_faces("a.jpg")               # [Face(box, confidence, points)], the kept one first
    sg.align_faces("a.jpg")              # [uint8 [218, 178, 3]] (one face: the kept one)
    sg.embed_photos(["a.jpg", "b.jpg"])  # float32 [2, D] (NaN rows without a face)
    gallery = sg.enroll({"ann": ["ann1.jpg", "ann2.jpg"], "bob": ["bob1.jpg"]})
    sg.identify(gallery, "probe.jpg")    # a name, "unknown" or "no_face"
    model = sg.load_model("runs/convnet")   # a train_dir; none: the packaged model
    model = sg.load_model("exported/siamese")  # a SavedModel siamese-export wrote

A photo is a file path or a uint8 RGB array [H, W, 3] (a whole photo: its face is
found and aligned, as the commands' --align=mtcnn does). Errors are the commands'
(siamese_graph.errors.DataError and its kin, with the same one-line messages).
"""
import collections
import functools

import numpy as np
from absl import logging

from siamese_graph.data import photos as photos_lib
from siamese_graph.errors import DataError
from siamese_graph.faces import align_graph, gate
from siamese_graph.inference import exported, galleries, models, zoo


@functools.lru_cache(maxsize=None)
def _packaged(name):
    return models.Model(zoo.path(name))


def load_model(checkpoint_dir=None, crop=None, flip_average=None, checkpoint_path=None):
    """A restored model (models.Inference): a train_dir, an exported SavedModel, or
    with none the packaged model (zoo.DEFAULT), said in one log line.

    Args:
      checkpoint_dir: a train_dir written by train, a SavedModel siamese-export wrote
        (a version folder, or its output folder: the highest version), or the name
        of a packaged model.
      crop: None: the model's own.
      flip_average: None: the model's (True for a train_dir; a SavedModel's is
        inside its graph, as its crop: only what it was exported with is taken).
    """
    if checkpoint_dir is not None and exported.find(checkpoint_dir):
        if checkpoint_path is not None:
            raise DataError("%s: a SavedModel holds one checkpoint; no checkpoint_path to choose" % checkpoint_dir)
        return exported.ExportedModel(checkpoint_dir, crop, flip_average)
    if checkpoint_dir is None or checkpoint_dir in zoo.names():
        name = checkpoint_dir or zoo.DEFAULT
        card = zoo.card(name)
        logging.info("%susing the packaged model %s (%s; trained on %s)",
                     "" if checkpoint_dir else "no checkpoint given: ", name, card.get("summary", ""),
                     card.get("data", ""))
        if crop is None and flip_average in (None, True) and checkpoint_path is None:
            return _packaged(name)
        checkpoint_dir = zoo.path(name)
    return models.Model(checkpoint_dir, crop, flip_average=flip_average is not False, checkpoint_path=checkpoint_path)


@functools.lru_cache(maxsize=None)
def _aligner():
    return align_graph.Aligner()


def _rgb(photo):
    if isinstance(photo, np.ndarray):
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise DataError("a photo array must be uint8 RGB [H, W, 3], got %s %s" % (photo.dtype, list(photo.shape)))
        return photo
    try:
        return photos_lib.to_rgb(photos_lib.read(photo)[1])
    except photos_lib.PhotoError as e:
        raise DataError("%s: unusable photo (%s)" % (photo, e))


def find_faces(photo):
    """The faces of a photo with at least the commands' confidence: [align.Face(box
    (x1, y1, x2, y2) pixels, confidence, points [5, 2] (x, y))], the one the
    commands keep first, then by confidence. [] without a face."""
    return _aligner()(_rgb(photo))[1]


def align_faces(photo):
    """[uint8 [218, 178, 3]]: the kept face warped into CelebA's aligned layout (the
    commands' --align=mtcnn); [] without a face."""
    aligned, faces = _aligner()(_rgb(photo))
    return [aligned] if faces else []


def _load(photo, aligned):
    if aligned:
        return photos_lib.load_photo(photo) if not isinstance(photo, np.ndarray) else photo
    faces = align_faces(photo)
    return faces[0] if faces else None


def embed_photos(photos, model=None, aligned=False, with_faces=False):
    """float32 [N, D] features of photos (NaN rows where there is no face).

    Args:
      photos: paths or uint8 arrays; whole photos, or with aligned=True faces
        already in the aligned layout (taken as they are, as --align=none).
      with_faces: also the face check's probabilities [N] (0 without a face).
    """
    model = model or load_model()
    feats, probs = model.embed([_load(p, aligned) for p in photos], with_faces=True)
    probs = np.asarray(probs, np.float32)
    feats[probs < gate.MIN_FACE_PROBABILITY] = np.nan
    return (feats, probs) if with_faces else feats


def distance(photo_a, photo_b, model=None, aligned=False):
    """The model's distance between two photos' faces; nan when either has none."""
    model = model or load_model()
    feats = embed_photos([photo_a, photo_b], model, aligned)
    if not np.isfinite(feats).all():
        return float("nan")
    return float(model.distance(feats[:1], feats[1:])[0])


def verify(photo_a, photo_b, model=None, threshold=None, aligned=False):
    """"same", "different" or "no_face" (either photo without a face) at the model's
    calibrated threshold, or the one given."""
    model = model or load_model()
    threshold = threshold if threshold is not None else model.threshold()
    if threshold is None:
        raise DataError("%s: no calibrated threshold; pass threshold= or run evaluate --calibrate"
                        % model.checkpoint_dir)
    d = distance(photo_a, photo_b, model, aligned)
    return "no_face" if not np.isfinite(d) else models.verdict(d, threshold)


Gallery = collections.namedtuple("Gallery", ["model", "names", "rows", "features", "files"])
Gallery.__doc__ = """Enrolled people: names [P], the person of each row [R], features [R, D], the files."""


def enroll(people, model=None, k=5, aligned=False):
    """A Gallery of {name: [photos]} (or a folder-per-person path): the first k
    photos with a face of each person. Raises DataError for a person without one."""
    model = model or load_model()
    load = (lambda p: _load(p, True)) if aligned else _load_whole
    names, rows, feats, files, _ = galleries.enroll(model, people, k, load, gate.MIN_FACE_PROBABILITY)
    return Gallery(model, names, rows, feats, files)


def _load_whole(photo):
    return _load(photo, False)


def identify(gallery, photo, threshold=None, aligned=False):
    """The enrolled name nearest the photo's face, "unknown" when further than the
    threshold (the model's calibrated one, or the one given), "no_face" without a face."""
    model = gallery.model
    feats, probs = embed_photos([photo], model, aligned, with_faces=True)
    threshold = threshold if threshold is not None else model.threshold()
    answer = galleries.identify(model, gallery.names, gallery.rows, gallery.features, feats, threshold, probs,
                                gate.MIN_FACE_PROBABILITY)
    return answer[0][0]


def score_pairs(pairs, model=None, threshold=None, load=None, min_face_probability=gate.MIN_FACE_PROBABILITY):
    """siamese-score's work on a pair list: [{a, b, distance, verdict, face_a, face_b}]
    for (photo_a, photo_b, ...) pairs, each distinct photo embedded once.

    Args:
      load: photo -> what models.Model.embed takes (the commands' loader.PhotoLoader);
        None: whole photos, the face found and aligned.
      face_a, face_b in the rows: each photo's face probability (0 without a face).
    """
    model = model or load_model()
    d, _, fa, fb = model.pair_distances(pairs, load or _load_whole, with_faces=True)
    return [{"a": p[0], "b": p[1], "distance": float(x), "face_a": round(float(a), 4), "face_b": round(float(b), 4),
             "verdict": models.verdict(x, threshold, a, b, min_face_probability)}
            for p, x, a, b in zip(pairs, d, fa, fb)]


def embed_people(people, model=None, load=None, min_face_probability=gate.MIN_FACE_PROBABILITY):
    """siamese-embed's work: every photo of {name: [photos]} (or a folder-per-person
    path) embedded. Returns ([(photo, person)] with a face, features [N, D] float32,
    [photos without a face]). Raises DataError when no photo has a face."""
    model = model or load_model()
    items = [(p, person) for person, paths in galleries.walk_people(people) for p in paths]
    feats, probs = model.embed([(load or _load_whole)(p) for p, _ in items], with_faces=True)
    keep = np.asarray(probs) >= min_face_probability
    no_face = [p for (p, _), k in zip(items, keep) if not k]
    if not keep.any():
        raise DataError("%s: no face found in any photo" % (people if isinstance(people, str) else "people"))
    return [it for it, k in zip(items, keep) if k], feats[keep].astype(np.float32), no_face
