"""Pair lists for evaluation: LFW's pairs.txt, plain lists, and balanced lists from records.

A pair list is a list of (path_a, path_b, label, fold) with label 0 = same
person, 1 = different. For records, "paths" are the records' filenames and the
photos come with them.
"""
import os

import numpy as np

from siamese_graph.errors import UserError


def read_lfw(path, image_root):
    """LFW's pairs.txt: a header "folds pairs_per_fold", then per fold that many
    `name i j` (same) lines followed by that many `name1 i name2 j` (different)
    lines. Photos are image_root/name/name_%04d.jpg."""
    lines = _lines(path)
    if not lines:
        raise UserError("%s: empty pairs file" % path)
    lineno, head = lines[0]
    try:
        folds, per_fold = (int(v) for v in head.split())
    except ValueError:
        raise UserError("%s:%d: expected a header '<folds> <pairs per fold>', got %r" % (path, lineno, head))
    body = lines[1:]
    if len(body) != 2 * folds * per_fold:
        raise UserError("%s: the header says %d folds of %d same and %d different pairs (%d lines) but "
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
            raise UserError("%s:%d: expected '%s', got %r" % (
                path, lineno, "name i j" if same else "name1 i name2 j", line[:80]))
    return out


def read_list(path, image_root):
    """Lines `path_a path_b label [fold]`, label 0 same / 1 different; relative
    paths are under image_root. Without folds, pairs are dealt into 10."""
    out = []
    for k, (lineno, line) in enumerate(_lines(path)):
        parts = line.split()
        if len(parts) not in (3, 4) or parts[2] not in ("0", "1") or (len(parts) == 4 and not parts[3].isdigit()):
            raise UserError("%s:%d: expected 'path_a path_b label(0|1) [fold]', got %r" % (path, lineno, line[:80]))
        a, b = (p if os.path.isabs(p) else os.path.join(image_root or "", p) for p in parts[:2])
        out.append((a, b, int(parts[2]), int(parts[3]) if len(parts) == 4 else None))
    if not out:
        raise UserError("%s: no pairs" % path)
    return _deal_folds(out)


def check_photos(pairs):
    for a, b, _, _ in pairs:
        for p in (a, b):
            if not os.path.isfile(p):
                raise UserError("%s: photo in the pairs file not found" % p)


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
        raise UserError("need at least two identities and one with two photos to make pairs")
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
    if not os.path.isfile(path):
        raise UserError("%s: pairs file not found" % path)
    with open(path, encoding="utf-8") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
