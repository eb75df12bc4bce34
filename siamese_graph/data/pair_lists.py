"""Pair lists for evaluation: LFW's pairs.txt, plain lists, and balanced lists from records.

A pair list is a list of (path_a, path_b, label, fold) with label 0 = same
person, 1 = different. For records, "paths" are the records' filenames and the
photos come with them.
"""
import os

import numpy as np

from siamese_graph.errors import DataError


def read_lfw(path, image_root):
    """LFW's pairs.txt: a header "folds pairs_per_fold", then per fold that many
    `name i j` (same) lines followed by that many `name1 i name2 j` (different)
    lines. Photos are image_root/name/name_%04d.jpg."""
    lines = _lines(path)
    if not lines:
        raise DataError("%s: empty pairs file" % path)
    lineno, head = lines[0]
    try:
        folds, per_fold = (int(v) for v in head.split())
    except ValueError:
        raise DataError("%s:%d: expected a header '<folds> <pairs per fold>', got %r" % (path, lineno, head))
    body = lines[1:]
    if len(body) != 2 * folds * per_fold:
        raise DataError("%s: the header says %d folds of %d same and %d different pairs (%d lines) but "
                        "the file has %d pair lines" % (path, folds, per_fold, per_fold,
                                                        2 * folds * per_fold, len(body)))
    photo = lambda name, i: os.path.join(image_root, name, "%s_%04d.jpg" % (name, int(i)))
    out = []
    for k, (lineno, line) in enumerate(body):
        fold, same = k // (2 * per_fold), (k % (2 * per_fold)) < per_fold
        parts = line.split()
        try:
            if same and len(parts) == 3:
                out.append((photo(parts[0], parts[1]), photo(parts[0], parts[2]), 0, fold))
            elif not same and len(parts) == 4:
                out.append((photo(parts[0], parts[1]), photo(parts[2], parts[3]), 1, fold))
            else:
                raise ValueError
        except ValueError:
            raise DataError("%s:%d: expected '%s', got %r" % (
                path, lineno, "name i j" if same else "name1 i name2 j", line[:80]))
    return out


def read_list(path, image_root="", labelled=True):
    """Lines `path_a path_b label [fold]` (label 0 same, 1 different); blank lines
    and lines starting with # are skipped; relative paths are under image_root.
    A line with a tab is split at tabs only (paths with spaces: `path a<TAB>path
    b<TAB>0`); any other line at runs of whitespace.
    Without folds, pairs are dealt into 10. With labelled=False (score's pair
    files) a line needs only `path_a path_b`, anything after is ignored, and
    label and fold are None. Every photo must exist; errors name file and line."""
    out = []
    for lineno, line in _lines(path):
        parts = [p.strip() for p in line.split("\t")] if "\t" in line else line.split()
        if parts[0].startswith("#"):
            continue
        if labelled:
            ok = (len(parts) in (3, 4) and parts[2] in ("0", "1")
                  and (len(parts) == 3 or parts[3].isdigit()))
            expected = "path_a path_b label(0|1) [fold]"
        else:
            ok, expected = len(parts) >= 2, "path_a path_b"
        if not ok:
            raise DataError("%s:%d: expected '%s', got %r (paths with spaces: separate the fields "
                            "with tabs)" % (path, lineno, expected, line[:80]))
        a, b = (p if os.path.isabs(p) else os.path.join(image_root or "", p) for p in parts[:2])
        for photo in (a, b):
            if not os.path.isfile(photo):
                raise DataError("%s:%d: photo %s not found%s" % (
                    path, lineno, photo, "" if "\t" in line or " " not in line.strip() else
                    " (paths with spaces: separate the fields with tabs)"))
        if labelled:
            out.append((a, b, int(parts[2]), int(parts[3]) if len(parts) == 4 else None))
        else:
            out.append((a, b, None, None))
    if not out:
        raise DataError("%s: no pairs" % path)
    return _deal_folds(out) if labelled else out


def format_list(pairs):
    """Pairs as read_list reads them: `path_a<TAB>path_b<TAB>label<TAB>fold` lines."""
    return "".join("%s\t%s\t%d\t%d\n" % (a, b, y, f) for a, b, y, f in pairs)


def check_photos(pairs):
    """DataError naming the first photo of a pair list that is not a file."""
    for a, b, _, _ in pairs:
        for p in (a, b):
            if not os.path.isfile(p):
                raise DataError("%s: photo in the pairs file not found" % p)


def balanced_from_identities(names, identities, num_pairs, seed=0, folds=10):
    """A deterministic balanced list over photos (names) with their identities:
    half same pairs (two different photos of one identity), half different."""
    rng = np.random.RandomState(seed)
    by_id = {}
    for n, i in zip(names, identities):
        by_id.setdefault(i, []).append(n)
    ids = sorted(by_id)
    multi = [i for i in ids if len(by_id[i]) >= 2]
    if len(ids) < 2 or not multi:
        raise DataError("need at least two identities and one with two photos to make pairs")
    out = []
    for k in range(num_pairs // 2):
        i = multi[rng.randint(len(multi))]
        a, b = rng.choice(len(by_id[i]), 2, replace=False)
        out.append((by_id[i][a], by_id[i][b], 0, None))
        i, j = rng.choice(len(ids), 2, replace=False)
        out.append((by_id[ids[i]][rng.randint(len(by_id[ids[i]]))],
                    by_id[ids[j]][rng.randint(len(by_id[ids[j]]))], 1, None))
    return _deal_folds(out, folds)


def _deal_folds(pairs, folds=10):
    """Pairs without folds are dealt round-robin, same and different pairs
    separately, so every fold holds both in the list's proportion."""
    if all(f is not None for *_, f in pairs):
        return pairs
    seen = [0, 0]
    out = []
    for a, b, y, _ in pairs:
        out.append((a, b, y, seen[y] % folds))
        seen[y] += 1
    return out


def _lines(path):
    """[(line number, stripped line)] of the non-blank lines of a UTF-8 text file."""
    if not os.path.isfile(path):
        raise DataError("%s: pairs file not found" % path)
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line.strip(" \r\n\ufeff")) for n, line in enumerate(f, 1) if line.strip(" \t\r\n\ufeff")]
    except UnicodeDecodeError as e:
        raise DataError("%s: not UTF-8 text (%s); save it as UTF-8" % (path, e.reason))
