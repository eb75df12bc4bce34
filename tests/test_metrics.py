"""metrics: AUC, best accuracy, EER, TAR@FAR and k-fold accuracy on hand-made cases
(distances: small = same, label 0 = same)."""
import numpy as np
import pytest

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
