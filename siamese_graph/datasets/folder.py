"""Folder-per-person layout: data_dir/<identity>/<photo> (LFW, VGGFace2, ORL).

Splits come from top-level train/ val/ test/ folders when present; otherwise
they are identity-disjoint and deterministic: identities are ordered by a hash
of their name with the seed, and the first `test_fraction` of them go to test,
the next `val_fraction` to val, the rest to train.
"""
import hashlib
import os

from siamese_graph.datasets import Listing, Photo
from siamese_graph.errors import UserError

SPLIT_FOLDERS = ("train", "val", "test")


def _people(root):
    return sorted(d for d in os.listdir(root)
                  if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))


def _photos_of(root, person, split, prefix=""):
    folder = os.path.join(root, person)
    return [Photo(os.path.join(folder, f), os.path.join(prefix, person, f), person, split)
            for f in sorted(os.listdir(folder))
            if not f.startswith(".") and os.path.isfile(os.path.join(folder, f))]


def split_identities(names, val_fraction, test_fraction, seed):
    """{name: split}, identity-disjoint and independent of listing order."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("--val_fraction and --test_fraction must be in [0, 1) and sum below 1")
    order = sorted(names, key=lambda n: hashlib.sha1(("%d:%s" % (seed, n)).encode()).hexdigest())
    n_test = int(round(test_fraction * len(order)))
    n_val = int(round(val_fraction * len(order)))
    split = {}
    for i, name in enumerate(order):
        split[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return split


def read(data_dir, val_fraction=0.0, test_fraction=0.1, seed=0):
    if not os.path.isdir(data_dir):
        raise UserError("%s: data folder not found" % data_dir)
    top = _people(data_dir)
    photos = []
    if top and set(top) <= set(SPLIT_FOLDERS) and "train" in top:
        layout = "folder/split-folders"
        for split in top:
            photos += [p for person in _people(os.path.join(data_dir, split))
                       for p in _photos_of(os.path.join(data_dir, split), person, split, split)]
    else:
        layout = "folder/fractions"
        split = split_identities(top, val_fraction, test_fraction, seed)
        for person in top:
            photos += _photos_of(data_dir, person, split[person])
    names = sorted({p.identity_name for p in photos})
    return Listing(photos, names, 0, {"layout": layout})
