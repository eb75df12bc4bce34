"""Learning-rate and momentum schedules (schedules.py)."""
import pytest
import tensorflow as tf

from siamese_graph.model import schedules

v1 = tf.compat.v1


def test_cyclic_schedule_moves_lr_and_beta1_in_opposite_directions():
    with tf.Graph().as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        lr, beta1 = schedules.cyclic(step, 100, 1e-4, 1e-3, 0.85, 0.95)
        with v1.Session() as sess:
            vals = [sess.run([lr, beta1], {step: s}) for s in (0, 25, 50, 75, 100, 150)]
    (l0, b0), (l25, b25), (l50, b50), (l75, b75), (l100, b100), (l150, b150) = vals
    assert l0 == pytest.approx(1e-4) and b0 == pytest.approx(0.95)
    assert l50 == pytest.approx(1e-3) and b50 == pytest.approx(0.85)
    assert l25 == pytest.approx(5.5e-4) and b25 == pytest.approx(0.90)
    assert l75 == pytest.approx(l25) and l100 == pytest.approx(l0) and l150 == pytest.approx(l50)
    assert b100 == pytest.approx(b0) and b150 == pytest.approx(b50)
