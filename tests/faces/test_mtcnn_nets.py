"""MTCNN's networks as tf.nn graphs (faces/mtcnn_nets.py): the mtcnn package's own
Keras models, with the same weights, give the same outputs."""
import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.faces import mtcnn_nets


def _package_model(name):
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    model = {"pnet": PNet, "rnet": RNet, "onet": ONet}[name]()
    model.build()
    model.set_weights(mtcnn_nets.weights(name))
    return model


@pytest.mark.parametrize("name,shape", [("pnet", (2, 37, 29, 3)), ("rnet", (5, 24, 24, 3)), ("onet", (5, 48, 48, 3))])
def test_each_network_is_the_packages(name, shape):
    x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    want = [np.asarray(t) for t in _package_model(name)(x)]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        got = sess.run(getattr(mtcnn_nets, name)(tf.constant(x)))
    if name == "pnet":  # (offsets, face probability) against (offsets, softmax of two)
        want = [want[0], want[1][..., 1]]
    elif name == "rnet":
        want = [want[0], want[1][:, 1]]
    else:  # the package: (offsets, landmarks, softmax); ours: (probability, offsets, landmarks)
        want = [want[2][:, 1], want[0], want[1]]
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert np.abs(g - w).max() < 1e-5
    assert got[-1 if name == "onet" else 1].std() > 0  # the control: outputs that vary with the input
