"""TrainConfig's checks (training/train_config.py): every number named in one line before anything is written."""

import pytest


@pytest.mark.parametrize("field,value,needle", [
    ("weight_decay", float("nan"), "--weight_decay=nan: must be a finite number"),
    ("lr_max", float("nan"), "--lr_max=nan: must be a finite number"),
    ("margin", float("nan"), "--margin=nan: must be a finite number"),
    ("gray_prob", float("inf"), "--gray_prob=inf: must be a finite number"),
    ("lr_max", 1e-5, "--lr_max=1e-05: must be at least --lr_min=0.0001"),
    ("learning_rate", -1.0, "--learning_rate=-1: must be > 0"),
    ("beta1_max", 1.0, "--beta1_max=1: must be in [0, 1)"),
    ("image_size", 0, "--image_size=0: must be in 1..512 pixels"),
    ("image_size", -5, "--image_size=-5: must be in 1..512 pixels"),
    ("identity_loss_weight", -0.1, "--identity_loss_weight=-0.1: must be >= 0 (0: off)"),
    ("identity_loss_scale", 0.0, "--identity_loss_scale=0: must be > 0"),
    ("identity_loss_margin", 1.0, "--identity_loss_margin=1: must be in [0, 1)"),
])
def test_every_training_number_is_checked_before_anything_is_written(field, value, needle):
    from siamese_graph import errors
    from siamese_graph.training import train_config

    with pytest.raises(errors.ArgumentError) as e:
        train_config.TrainConfig(**{field: value}).check()
    assert errors.one_line(e.value) == needle
