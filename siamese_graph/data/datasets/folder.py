"""Folder-per-person layout: data_dir/<identity>/<photo> (LFW, VGGFace2, ORL).

Splits come from top-level train/ val/ test/ folders when present; otherwise
they are identity-disjoint and deterministic: identities are ordered by a hash
of their name with the seed, and the first `test_fraction` of them go to test,
the next `val_fraction` to val, the rest to train.

walk() is the one walk of such a tree: make_records, evaluate --kshot, gallery
and embed all list people and photos through it.
"""
import hashlib
import os

from siamese_graph.data.datasets import Listing, Photo
from siamese_graph.errors import ArgumentError, DataError

SPLIT_FOLDERS = ("train", "val", "test")
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def _visible(name):
    return not name.startswith(".")


def _check_utf8(folder, name):
    """DataError for a file or folder name that is not UTF-8 (Python holds its stray
    bytes as surrogates): manifests, labels.txt and the projector's files are UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError("%s: a file or folder name that is not UTF-8 (%r); rename it"
                        % (folder, os.fsencode(name)))


def people(root):
    """Sorted person folder names under root (hidden ones left out).

    Raises DataError for a name with a tab, newline or other control character:
    labels.txt and the projector's metadata.tsv are one line a person."""
    if not os.path.isdir(root):
        raise DataError("%s: folder not found" % root)
    names = sorted(d for d in os.listdir(root) if _visible(d) and os.path.isdir(os.path.join(root, d)))
    for name in names:
        _check_utf8(root, name)
        if _CONTROL & set(name):
            raise DataError("%r: a person folder name with a tab, newline or other control "
                            "character; rename it" % os.path.join(root, name))
    return names


def photo_files(folder):
    """Sorted paths of the visible files in one person's folder."""
    names = [f for f in sorted(os.listdir(folder)) if _visible(f) and os.path.isfile(os.path.join(folder, f))]
    for f in names:
        _check_utf8(folder, f)
    return [os.path.join(folder, f) for f in names]


def walk(root):
    """[(person, [photo path, ...]), ...] for every person folder that holds files.

    Raises DataError when root is missing or holds no photos in person folders."""
    out = [(person, photo_files(os.path.join(root, person))) for person in people(root)]
    out = [(person, files) for person, files in out if files]
    check_distinct([Photo(f, os.path.join(person, os.path.basename(f)), person, None)
                    for person, files in out for f in files], root)
    if not out:
        raise DataError("%s: no photos in person folders" % root)
    return out


def split_identities(names, val_fraction, test_fraction, seed):
    """{name: split}, identity-disjoint and independent of listing order."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ArgumentError(name, value, "must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ArgumentError("test_fraction", test_fraction, "val_fraction + test_fraction must be "
                            "below 1 (val_fraction=%g)" % val_fraction)
    order = sorted(names, key=lambda n: hashlib.sha1(("%d:%s" % (seed, n)).encode()).hexdigest())
    n_test = int(round(test_fraction * len(order)))
    n_val = int(round(val_fraction * len(order)))
    split = {}
    for i, name in enumerate(order):
        split[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return split


def _photos(root, split_of, prefix=""):
    return [Photo(path, os.path.join(prefix, person, os.path.basename(path)), person, split_of(person))
            for person in people(root) for path in photo_files(os.path.join(root, person))]


def check_distinct(photos, data_dir):
    """DataError when two identities resolve to the same photo (a symlinked person
    folder, or linked files): the same face under two names poisons the different pairs."""
    seen = {}
    for p in photos:
        real = os.path.realpath(p.path)
        other = seen.setdefault(real, p)
        if other.identity_name != p.identity_name:
            raise DataError("%s: identities %r and %r hold the same photo (%s and %s resolve to %s; a linked "
                            "folder or file?): give each person one folder" % (
                                data_dir, other.identity_name, p.identity_name, other.relname, p.relname, real))


def read(data_dir, val_fraction=0.0, test_fraction=0.1, seed=0):
    """Lists a folder-per-person tree. Raises DataError or ArgumentError."""
    if not os.path.isdir(data_dir):
        raise DataError("%s: data folder not found" % data_dir)
    top = people(data_dir)
    splits = [t for t in top if t in SPLIT_FOLDERS]
    if splits and not set(top) <= set(SPLIT_FOLDERS):
        raise DataError("%s: split folders (%s) beside other folders (%s): split folders must be named %s, "
                        "and nothing else may sit beside them" % (
                            data_dir, ", ".join(splits), ", ".join(t for t in top if t not in SPLIT_FOLDERS)[:200],
                            ", ".join(SPLIT_FOLDERS)))
    if top and set(top) <= set(SPLIT_FOLDERS) and "train" not in top:
        raise DataError("%s: split folders %s but no train/ (expected %s)" % (data_dir, ", ".join(top),
                                                                             ", ".join(SPLIT_FOLDERS)))
    if top and set(top) <= set(SPLIT_FOLDERS) and "train" in top:
        layout = "folder/split-folders"
        photos = [p for split in top
                  for p in _photos(os.path.join(data_dir, split), lambda _, s=split: s, split)]
    else:
        layout = "folder/fractions"
        split = split_identities(top, val_fraction, test_fraction, seed)
        photos = _photos(data_dir, split.get)
    check_distinct(photos, data_dir)
    names = sorted({p.identity_name for p in photos})
    return Listing(photos, names, 0, {"layout": layout})
