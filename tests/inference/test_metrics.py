"""metrics: AUC, best accuracy, EER, TAR@FAR and k-fold accuracy on hand-made cases
(distances: small = same, label 0 = same)."""
import numpy as np
import pytest

from siamese_graph.errors import DataError
from siamese_graph.inference import metrics


def test_perfect_inverted_and_random_auc():
    d = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 1.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert metrics.roc_auc(d, y) == pytest.approx(1.0)
    assert metrics.roc_auc(d, 1 - y) == pytest.approx(0.0)  # inverted labels: what calibration refuses
    rng = np.random.RandomState(0)
    assert abs(metrics.roc_auc(rng.rand(4000), rng.randint(0, 2, 4000)) - 0.5) < 0.03


def test_best_accuracy_and_its_threshold():
    d = np.array([0.1, 0.2, 0.6, 0.5, 0.9, 1.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    acc, threshold = metrics.best_accuracy(d, y)
    assert acc == pytest.approx(5 / 6)
    assert metrics.accuracy_at(d, y, threshold) == pytest.approx(acc)


def test_kfold_uses_other_folds_thresholds():
    d = np.array([0.1, 0.2, 0.8, 0.9] * 5)
    y = np.array([0, 0, 1, 1] * 5)
    mean, std, per_fold = metrics.kfold_accuracy(d, y, np.arange(20) % 5)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0) and len(per_fold) == 5


def test_metrics_hand_cases():
    d = [0.1, 0.2, 0.3, 0.4]
    assert metrics.roc_auc(d, [0, 0, 1, 1]) == 1.0
    assert metrics.roc_auc(d, [1, 1, 0, 0]) == 0.0
    assert metrics.roc_auc([0.5, 0.5], [0, 1]) == 0.5
    # one of four same/different orderings wrong: AUC 3/4
    assert metrics.roc_auc([0.1, 0.3, 0.2, 0.4], [0, 0, 1, 1]) == 0.75
    acc, thr = metrics.best_accuracy([0.1, 0.3, 0.2, 0.4], [0, 0, 1, 1])
    assert acc == 0.75 and thr == pytest.approx(0.15)  # midway from .1 to .2
    with pytest.raises(DataError, match="2 same and 0 different pairs"):
        metrics.roc_auc([0.1, 0.2], [0, 0])


def test_eer_tar_at_far_and_kfold_hand_cases():
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.15, 0.35, 0.5, 0.6])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # sorted: .1s .15d .2s .3s .35d .4s .5d .6d; different pairs above each same one: 4+3+3+2
    assert metrics.roc_auc(d, y) == pytest.approx(12 / 16)
    eer, _ = metrics.equal_error_rate(d, y)
    assert eer == pytest.approx(0.25)
    assert metrics.tar_at_far(d, y, 0.0) == 0.25  # before the first different pair: one same
    assert metrics.tar_at_far(d, y, 0.25) == 0.75
    acc, thr = metrics.best_accuracy(d, y)
    assert acc == 0.75 and thr == pytest.approx(0.325)  # 6 of 8 right; midway from .3 to .35
    # fold 0 = pairs 0-3 and fold 1 = 4-7 both hold a mix; thresholds come from the other fold
    folds = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    mean, std, per = metrics.kfold_accuracy(d, y, folds)
    for f in (0, 1):
        _, t = metrics.best_accuracy(d[folds != f], y[folds != f])
        assert per[f] == metrics.accuracy_at(d[folds == f], y[folds == f], t)
    assert mean == pytest.approx(np.mean(per)) and std == pytest.approx(np.std(per))


def test_perfect_separation():
    d, y = [0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]
    assert metrics.equal_error_rate(d, y)[0] == 0.0
    assert metrics.tar_at_far(d, y, 1e-3) == 1.0
    assert metrics.kfold_accuracy(d, y, [0, 1, 0, 1])[0] == 1.0
