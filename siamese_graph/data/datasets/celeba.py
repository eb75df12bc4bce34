"""CelebA's own layout: img_align_celeba/ (or the in-the-wild img_celeba/, for the
aligner), identity_CelebA.txt, list_eval_partition.txt.

Partition codes: 0 train, 1 val, 2 test. The identity file may carry a header
line and CRLF endings. The image folder may hold only part of the listed photos.
"""
import os
import re

from siamese_graph.data.datasets import Listing, Photo
from siamese_graph.errors import DataError

IMAGES = "img_align_celeba"
WILD_IMAGES = "img_celeba"  # CelebA's in-the-wild photos (whole pictures): align them first
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
PARTITIONS = {"0": "train", "1": "val", "2": "test"}

_LINE = re.compile(r"^(\S+)\s+(\S+)$")


class MissingPhotos(DataError):
    """Photos listed in the annotations are not in the image folder (read's allow_missing
    writes records for those present)."""


def _read_table(path, value_name, validate):
    """Reads `<file> <value>` lines into {file: (value, line number)}."""
    if not os.path.isfile(path):
        raise DataError("%s: annotation file not found" % path)
    table = {}
    try:
        with open(path, "r", encoding="utf-8-sig", newline=None) as f:  # -sig: a byte-order mark is not a name
            lines = list(f)
    except UnicodeDecodeError as e:
        raise DataError("%s: not UTF-8 text (%s); save it as UTF-8" % (path, e.reason))
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if lineno == 1 and _is_header(line):
            continue  # a header line: a count, or column names
        if not m:
            raise DataError("%s:%d: expected '<photo> <%s>', got %r"
                            % (path, lineno, value_name, line[:80]))
        name, value = m.groups()
        if not validate(value):
            raise DataError("%s:%d: bad %s %r for %s" % (path, lineno, value_name, value, name))
        if name in table:
            raise DataError("%s:%d: photo %s listed twice (first on line %d)"
                            % (path, lineno, name, table[name][1]))
        table[name] = (value, lineno)
    return table


def _is_header(line):
    """CelebA's header lines: a photo count, or column names (words, no file names)."""
    parts = line.split()
    return (len(parts) == 1 and parts[0].isdigit()) or all(re.fullmatch(r"[A-Za-z_]+", p) for p in parts)


def _is_identity(v):
    return v.isdigit()


def _is_partition(v):
    return v.isdigit() and len(v) < 4  # checked against PARTITIONS below, with its line


def read(data_dir, allow_missing=False, images=IMAGES):
    """Lists a CelebA-layout folder. Raises DataError on bad annotations.

    images: the photo folder's name: IMAGES (aligned crops) or WILD_IMAGES."""
    if not os.path.isdir(data_dir):
        raise DataError("%s: data folder not found" % data_dir)
    image_dir = os.path.join(data_dir, images)
    if not os.path.isdir(image_dir):
        if images == IMAGES and os.path.isdir(os.path.join(data_dir, WILD_IMAGES)):
            raise DataError("%s: image folder not found; %s/ holds in-the-wild photos: align them first "
                            "(siamese-align, or make_records' align_faces)" % (image_dir, WILD_IMAGES))
        raise DataError("%s: image folder not found" % image_dir)
    id_path = os.path.join(data_dir, IDENTITY_FILE)
    part_path = os.path.join(data_dir, PARTITION_FILE)
    identities = _read_table(id_path, "identity", _is_identity)
    partitions = _read_table(part_path, "partition", _is_partition)
    for name, (code, lineno) in partitions.items():
        if code not in PARTITIONS:
            raise DataError("%s:%d: unknown partition code %r for %s (expected 0, 1 or 2)"
                            % (part_path, lineno, code, name))
    only_id = sorted(set(identities) - set(partitions))
    only_part = sorted(set(partitions) - set(identities))
    if only_id or only_part:
        name, path, other = ((only_id[0], id_path, part_path) if only_id
                             else (only_part[0], part_path, id_path))
        raise DataError("%s:%d: %s is not in %s (%d photos in one file only): the identity "
                        "and partition files disagree"
                        % (path, (identities if only_id else partitions)[name][1], name, other,
                           len(only_id) + len(only_part)))
    present = set(os.listdir(image_dir))
    missing = [n for n in identities if n not in present]
    if missing and not allow_missing:
        raise MissingPhotos("%s: %d of %d listed photos are missing (first: %s)"
                            % (image_dir, len(missing), len(identities), missing[0]))
    photos = []
    for name in sorted(identities):
        if name in present:
            photos.append(Photo(os.path.join(image_dir, name), name, identities[name][0],
                                PARTITIONS[partitions[name][0]]))
    names = sorted({p.identity_name for p in photos}, key=int)
    return Listing(photos, names, len(missing), {"layout": "celeba", "listed": len(identities)})
