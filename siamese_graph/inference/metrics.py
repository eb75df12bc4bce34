"""Verification metrics in numpy, on distances (small = same) and labels (0 same, 1 different)."""
import numpy as np

from siamese_graph.errors import DataError


def roc(distances, labels):
    """ROC over all thresholds "same if distance <= t".

    Returns (far, tar, thresholds): false-accept rate (different pairs called
    same) and true-accept rate (same pairs called same), from (0, 0) to (1, 1).
    """
    d = np.asarray(distances, np.float64)
    same = np.asarray(labels) == 0
    if same.all() or not same.any():
        raise DataError("%d same and %d different pairs: a ROC (and so AUC, EER, accuracy) needs "
                        "both kinds" % (same.sum(), (~same).sum()))
    order = np.argsort(d, kind="mergesort")
    d, same = d[order], same[order]
    last = np.r_[np.nonzero(np.diff(d))[0], len(d) - 1]  # the last index of each distinct distance
    tar = np.r_[0.0, np.cumsum(same)[last] / same.sum()]
    far = np.r_[0.0, np.cumsum(~same)[last] / (~same).sum()]
    return far, tar, np.r_[-np.inf, d[last]]


def roc_auc(distances, labels):
    """Area under the ROC: the chance a random same pair is closer than a random different one
    (ties count half)."""
    far, tar, _ = roc(distances, labels)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def best_accuracy(distances, labels):
    """(accuracy, threshold) of the best "same if distance <= threshold" rule.

    The threshold is the midpoint between the last distance called same and the
    next one, so it carries over to other pairs better than the edge itself.
    """
    far, tar, t = roc(distances, labels)
    same = np.asarray(labels) == 0
    acc = (tar * same.sum() + (1 - far) * (~same).sum()) / len(same)
    i = int(np.argmax(acc))
    ext = np.r_[t[1] - 1.0, t[1:], t[-1] + 1.0]
    return float(acc[i]), float((ext[i] + ext[i + 1]) / 2)


def equal_error_rate(distances, labels):
    """(EER, threshold): where the false-accept rate equals the false-reject rate."""
    far, tar, thresholds = roc(distances, labels)
    frr = 1 - tar
    i = int(np.argmin(np.abs(far - frr)))
    # interpolate between the two ROC points around the crossing
    j = i + 1 if i + 1 < len(far) and (far[i] - frr[i]) * (far[i + 1] - frr[i + 1]) <= 0 else i
    if j == i or (far[j] - frr[j]) == (far[i] - frr[i]):
        return float((far[i] + frr[i]) / 2), float(thresholds[i])
    t = (frr[i] - far[i]) / ((far[j] - far[i]) - (frr[j] - frr[i]))
    return float(far[i] + t * (far[j] - far[i])), float(thresholds[i] + t * (thresholds[j] - thresholds[i])
                                                        if np.isfinite(thresholds[i]) else thresholds[j])


def tar_at_far(distances, labels, target_far):
    """True-accept rate at the largest threshold whose false-accept rate is <= target_far."""
    far, tar, _ = roc(distances, labels)
    ok = far <= target_far
    return float(tar[ok].max())


def accuracy_at(distances, labels, threshold):
    d = np.asarray(distances)
    return float(np.mean((d > threshold).astype(int) == np.asarray(labels)))


def kfold_accuracy(distances, labels, folds):
    """LFW's protocol: for each fold, the threshold is the best one on the other
    folds, and accuracy is measured on the fold. Returns (mean, std, per-fold)."""
    d, y, folds = np.asarray(distances), np.asarray(labels), np.asarray(folds)
    accs = []
    for f in np.unique(folds):
        test = folds == f
        _, threshold = best_accuracy(d[~test], y[~test])
        accs.append(accuracy_at(d[test], y[test], threshold))
    return float(np.mean(accs)), float(np.std(accs)), accs
