"""Low-level layers, towers and the factory: shapes, batch norm statistics, bad settings."""
import numpy as np
import tensorflow as tf

from siamese_graph.model import layers

v1 = tf.compat.v1


def run(fetches, init=True, extra=None):
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        if extra is not None:
            sess.run(extra)
        return sess.run(fetches)


def test_conv_dense_shapes_and_weight_decay():
    with tf.Graph().as_default():
        x = tf.zeros([2, 8, 8, 3])
        y = layers.conv2d(x, 5, 3, stride=2, scope="c", weight_decay=0.1)
        z = layers.dense(layers.flatten(y), 7, scope="d")
        assert y.shape.as_list() == [2, 4, 4, 5] and z.shape.as_list() == [2, 7]
        assert len(v1.losses.get_regularization_losses()) == 1
        names = sorted(v.op.name for v in v1.trainable_variables())
        assert names == ["c/weights", "d/biases", "d/weights"]


def test_batch_norm_training_updates_moving_statistics():
    with tf.Graph().as_default():
        x = tf.constant(np.random.RandomState(0).normal(3.0, 2.0, (64, 4, 4, 2)), tf.float32)
        y = layers.batch_norm(x, True, scope="bn", decay=0.5)
        updates = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
        assert len(updates) == 2
        with v1.variable_scope("bn", reuse=True):
            mean = v1.get_variable("moving_mean")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            out = sess.run(y)
            assert abs(out.mean()) < 1e-3 and abs(out.std() - 1) < 1e-2  # batch statistics
            for _ in range(10):
                sess.run(updates)
            np.testing.assert_allclose(sess.run(mean), [3.0, 3.0], atol=0.2)
        assert mean not in v1.trainable_variables()


def test_batch_norm_inference_uses_moving_statistics():
    with tf.Graph().as_default():
        x = tf.fill([4, 2, 2, 1], 5.0)
        y = layers.batch_norm(x, False, scope="bn")  # moving mean 0, variance 1
        np.testing.assert_allclose(run(y), 5.0 / np.sqrt(1 + 1e-3), rtol=1e-5)
        assert not v1.get_collection(v1.GraphKeys.UPDATE_OPS)


