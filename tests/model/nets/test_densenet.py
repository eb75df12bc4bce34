"""DenseNet (nets/densenet.py): the 121-layer structure."""
import tensorflow as tf

from siamese_graph.model.nets import nets_factory

v1 = tf.compat.v1


def test_densenet121_structure():
    with tf.Graph().as_default():
        fn = nets_factory.get_network_fn("densenet121", 32, growth_rate=4, theta=0.5, embedding_size=8)
        f = fn(tf.zeros([2, 32, 32, 3]), True)
        assert f.shape.as_list() == [2, 8]
        units = {v.op.name.split("/")[1] for v in v1.global_variables() if "/unit" in v.op.name}
        assert len(units) == max(6, 12, 24, 16)
        per_block = [len({v.op.name.split("/")[1] for v in v1.global_variables()
                          if v.op.name.startswith("block%d/unit" % b)}) for b in range(1, 5)]
        assert per_block == [6, 12, 24, 16]
        # block 1 ends with 2k + 6k = 32 channels; the transition keeps theta * 32 = 16
        w = [v for v in v1.global_variables() if v.op.name == "transition1/compress/conv/weights"][0]
        assert w.shape.as_list() == [1, 1, 32, 16]
        bottleneck = [v for v in v1.global_variables() if v.op.name == "block2/unit1/bottleneck/conv/weights"][0]
        assert bottleneck.shape.as_list() == [1, 1, 16, 16]  # 4k filters
