"""train's flags (train_flags.py): one flag per TrainConfig field, with its default, read back into a TrainConfig."""
import dataclasses

from absl import flags

from siamese_graph import common_flags, train_flags
from siamese_graph.training import train_config
from tests.conftest import REPO

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


def test_the_long_run_is_the_default_runs_teacher_and_learns_from_none(monkeypatch):
    # configs/long.flags reads train.flags, which distils the packaged long run:
    # the long run must turn that off, or it would learn from its own packaged weights.
    monkeypatch.chdir(REPO)
    try:
        common_flags.parse(["train", "--flagfile=train.flags"])
        default = train_flags.config_from_flags()
        FLAGS.unparse_flags()
        common_flags.parse(["train", "--flagfile=configs/long.flags"])
        long_run = train_flags.config_from_flags()
    finally:
        FLAGS.unparse_flags()
    assert default.distills and default.distill_from == "convnet-celeba-long"
    assert not long_run.distills
    assert (long_run.image_size, default.image_size) == (64, 48)
