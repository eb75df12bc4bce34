"""nets_factory: a net is one module plus one registry line; its options are declared
by the net, become TrainConfig fields and train flags, and are saved in model.json;
model.json files written before an option existed still load."""
import dataclasses
import types

import pytest
import tensorflow as tf

from siamese_graph.errors import ArgumentError
from siamese_graph.model.nets import nets_factory
from siamese_graph.training import train_config


def test_every_option_is_declared_by_its_net_and_is_a_field_and_a_model_key():
    declared = {name: net for net in nets_factory.NETS.values() for name in net.OPTIONS}
    assert set(declared) == set(nets_factory.OPTIONS) == {"convnet_width", "convnet_embedding", "embedding_size",
                                                          "growth_rate", "theta"}
    fields = {f.name: f.default for f in dataclasses.fields(train_config.TrainConfig)}
    for name, net in declared.items():
        assert fields[name] == net.OPTIONS[name][0]  # the net's default is the config's
        assert name in nets_factory.MODEL_KEYS
    config = train_config.TrainConfig(convnet_width=2.0, theta=0.25).model_config()
    assert config["convnet_width"] == 2.0 and config["theta"] == 0.25


def test_a_new_net_is_one_module_and_one_line(monkeypatch):
    """A net the factory has never seen, registered by one line: built with its own
    option, others' options ignored, its checks applied."""
    def build(images, training, weight_decay=0.0, tiny_units=3):
        return tf.reduce_mean(images, axis=[1, 2])[:, :1] * tf.ones([1, tiny_units])

    def check_options(tiny_units):
        if tiny_units < 1:
            raise ArgumentError("tiny_units", tiny_units, "must be at least 1")

    tiny = types.SimpleNamespace(OPTIONS={"tiny_units": (3, "tiny: output units.")}, MIN_IMAGE_SIZE=4,
                                 SIZE_MULTIPLE=4, build=build, check_options=check_options)
    monkeypatch.setitem(nets_factory.NETS, "tiny", tiny)  # the one line
    monkeypatch.setitem(nets_factory.OPTIONS, "tiny_units", 3)  # what NETS gives at import
    fn = nets_factory.get_network_fn("tiny", 8, tiny_units=5, convnet_width=2.0)
    assert fn(tf.zeros([2, 8, 8, 3]), True).shape.as_list() == [2, 5]
    with pytest.raises(ArgumentError, match="tiny_units=0: must be at least 1"):
        nets_factory.get_network_fn("tiny", 8, tiny_units=0)
    with pytest.raises(ArgumentError, match="not a multiple of 4 for net tiny"):
        nets_factory.get_network_fn("tiny", 10)
    with pytest.raises(ArgumentError, match="not an option of any net"):
        nets_factory.get_network_fn("convnet", 16, depth=3)


@pytest.mark.parametrize("name,size,kw,needle", [
    ("resnet", 64, {}, "unknown tower"),
    ("convnet", 8, {}, "too small"),
    ("convnet", 40, {}, "multiple of 16"),
    ("densenet121", 16, {}, "too small"),
    ("densenet121", 64, {"theta": 0.0}, r"\(0, 1\]"),
    ("densenet121", 64, {"theta": 1.5}, r"\(0, 1\]"),
])
def test_factory_rejects_bad_settings(name, size, kw, needle):
    with pytest.raises(ArgumentError, match=needle):
        nets_factory.get_network_fn(name, size, **kw)
