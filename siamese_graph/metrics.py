"""Verification metrics in numpy, on distances (small = same) and labels (0 same, 1 different)."""
import numpy as np


def roc(distances, labels):
    """ROC over all thresholds "same if distance <= t".

    Returns (far, tar, thresholds): false-accept rate (different pairs called
    same) and true-accept rate (same pairs called same), from (0, 0) to (1, 1).
    """
    d = np.asarray(distances, np.float64)
    same = np.asarray(labels) == 0
    if same.all() or not same.any():
        raise ValueError("ROC needs both same and different pairs")
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
    """(accuracy, threshold) of the best "same if distance <= threshold" rule."""
    far, tar, thresholds = roc(distances, labels)
    same = np.asarray(labels) == 0
    acc = (tar * same.sum() + (1 - far) * (~same).sum()) / len(same)
    i = int(np.argmax(acc))
    return float(acc[i]), float(thresholds[i])
