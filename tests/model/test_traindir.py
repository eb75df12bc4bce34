"""The train_dir format (traindir.py): thresholds, model.json of earlier versions, checkpoint choice, own-folder checks."""
import json

import pytest
import tensorflow as tf

from siamese_graph.errors import DataError
from siamese_graph.model import traindir
from siamese_graph.model.nets import convnet, densenet, nets_factory


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0, "0.5", True, None])
def test_check_threshold_refuses_what_no_verdict_can_use(bad):
    with pytest.raises(DataError, match="threshold"):
        traindir.check_threshold(bad, "--threshold")


def test_check_threshold_keeps_a_positive_distance():
    assert traindir.check_threshold(0.73, "x") == 0.73
    assert traindir.check_threshold(2, "x") == 2.0


def test_a_model_json_written_before_the_options_still_loads(tmp_path):
    """A model.json of the first versions: no convnet options, no moving average."""
    old = {"net": "convnet", "head": "absdiff", "head_units": 128, "l2_normalize": True, "embedding_size": 32,
           "growth_rate": 32, "theta": 0.5, "epsilon": 1e-6, "image_size": 64, "crop": "celeba"}
    (tmp_path / traindir.MODEL_FILE).write_text(json.dumps(old))
    config = traindir.load_config(str(tmp_path))
    assert config["convnet_width"] == convnet.OPTIONS["convnet_width"][0]
    assert config["convnet_embedding"] == 0 and config["moving_average_decay"] == 0.0
    with tf.Graph().as_default():
        features = nets_factory.network_fn_from_config(config)(tf.zeros([1, 64, 64, 3]), False)
    assert features.shape.as_list() == [1, 1024]  # the first versions' tower: no embedding
    assert densenet.OPTIONS["theta"][0] == config["theta"]
