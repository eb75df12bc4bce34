"""The default conv tower (nets/convnet.py)."""
import tensorflow as tf

from siamese_graph.model.nets import nets_factory


def test_convnet_gives_1024_features_at_64():
    with tf.Graph().as_default():
        fn = nets_factory.get_network_fn("convnet", 64)
        f = fn(tf.zeros([3, 64, 64, 3]), True)
        assert f.shape.as_list() == [3, 1024]
