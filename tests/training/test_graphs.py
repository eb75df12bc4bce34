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


@pytest.mark.parametrize("cache", [False, True])
def test_the_identity_loss_classifies_each_batch_photo_as_its_person(synthetic_records, cache):
    """--identity_loss_weight: every photo of a batch gets its person's class (one a
    person across folders: the same folder twice gives the same classes), and the
    classification loss is added to the contrastive one."""
    import dataclasses

    import numpy as np

    from siamese_graph.data import pairs, records
    from siamese_graph.model import siamese
    from siamese_graph.training import graphs, train_config

    v1 = tf.compat.v1
    split = pairs.pairable_split(synthetic_records[0], "train")
    config = train_config.TrainConfig(image_size=16, batch_size=4, cache=cache, loss_pairs="active",
                                      moving_average_decay=0.9,
                                      identity_loss_weight=0.5, identity_loss_scale=8.0,
                                      identity_loss_margin=0.1)
    (table, _), num_classes = records.identity_classes([split, split])
    assert num_classes == 12  # the train split's people
    with tf.Graph().as_default():
        batch = graphs.build_inputs([split, split], config)
        with v1.Session() as sess:
            for _ in range(3):
                b = sess.run(batch)
                np.testing.assert_array_equal(b["class_a"], table[b["identity_a"]])
                np.testing.assert_array_equal(b["class_b"], table[b["identity_b"]])
                assert (b["class_a"] >= 0).all() and (b["class_b"] >= 0).all()
    config = dataclasses.replace(config, lr_schedule="constant", learning_rate=1e-2)
    with tf.Graph().as_default():
        graph = graphs.build_training_graph([split, split], config)
        weights, = [v for v in v1.global_variables() if v.op.name == siamese.CLASSIFIER_SCOPE + "/weights"]
        assert weights.shape[1] == num_classes
        averaged = [v.op.name for v in v1.global_variables() if "ExponentialMovingAverage" in v.op.name]
        assert averaged and not [a for a in averaged if a.startswith(siamese.CLASSIFIER_SCOPE)]  # training only
        identity = v1.get_default_graph().get_tensor_by_name("identity_loss_value:0")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            before = [sess.run([graph.loss, identity]) for _ in range(5)]
            for loss, value in before:
                assert value > 0 and loss >= config.identity_loss_weight * value  # contrastive part >= 0
            for _ in range(60):
                sess.run(graph.train_op)
            after = [sess.run(identity) for _ in range(5)]
    assert np.mean(after) < 0.7 * np.mean([v for _, v in before])  # it learns the people
