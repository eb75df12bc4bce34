"""The training graph (training/graphs.py)."""

import pytest
import tensorflow as tf


def test_the_optimizer_initializes_before_the_global_step(synthetic_records):
    """Adam's beta1_power starts from the schedule's beta1, a function of the step.
    Initializers run in parallel (on a cluster, across processes), so it must not need
    global_step to exist yet: it failed with "Could not find variable global_step"."""
    from siamese_graph.data import pairs
    from siamese_graph.training import graphs, train_config

    v1 = tf.compat.v1
    config = train_config.TrainConfig(image_size=16, batch_size=4, beta1_max=0.93)
    with tf.Graph().as_default():
        graph = graphs.build_training_graph([pairs.pairable_split(synthetic_records[0], "train")], config)
        beta1_power = [v for v in v1.global_variables() if "beta1_power" in v.name][0]
        with v1.Session() as sess:
            sess.run(beta1_power.initializer)  # global_step still uninitialized
            assert sess.run(beta1_power) == pytest.approx(0.93)
            sess.run(v1.global_variables_initializer())
            sess.run(graph.train_op)
            assert sess.run(v1.train.get_global_step()) == 1
