"""train's flags (train_flags.py): one flag per TrainConfig field, with its default, read back into a TrainConfig."""
import dataclasses

from absl import flags

from siamese_graph import common_flags, train_flags
from siamese_graph.training import train_config

FLAGS = flags.FLAGS

def test_train_config_defaults_are_the_flag_defaults():
    for f in dataclasses.fields(train_config.TrainConfig):
        want = f.default if f.name != "crop" else None  # --crop: None means celeba when training
        assert FLAGS[f.name].default == want, f.name
    assert train_flags.config_from_flags().crop == "celeba"


def test_config_from_flags_reads_the_parsed_flags():
    try:
        common_flags.parse(["train", "--image_size=48", "--net=densenet121", "--crop=none", "--margin=2.5"])
        config = train_flags.config_from_flags()
    finally:
        FLAGS.unparse_flags()
    assert (config.image_size, config.net, config.crop, config.margin) == (48, "densenet121", "none", 2.5)
    assert train_flags.config_from_flags().image_size == train_config.TrainConfig().image_size
