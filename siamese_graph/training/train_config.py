"""TrainConfig: every number and switch of a training run, with its checks.
"""
import dataclasses
import math

import tensorflow as tf

from siamese_graph.data import preprocessing
from siamese_graph.errors import ArgumentError
from siamese_graph.model import siamese
from siamese_graph.model.nets import nets_factory

v1 = tf.compat.v1


# Bounds that keep a typo from allocating the machine's memory (a step holds
# 2 x batch_size images of image_size^2 x 3 floats, and their activations).
MAX_BATCH_SIZE = 4096


MAX_IMAGE_SIZE = 512


LOSS_PAIRS = ("given", "all", "active")  # TrainConfig.loss_pairs


MIXED_PRECISION = ("auto", "none", "bfloat16")  # TrainConfig.mixed_precision




def _field(default, help_text, choices=None):
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


@dataclasses.dataclass
class _Fields:
    """Everything that defines a training graph. The train command has a flag of
    each name, with these defaults and help texts; each net's options
    (nets_factory.OPTIONS) are fields too, added below."""
    # the model (saved as model.json; see nets_factory.MODEL_KEYS)
    net: str = _field("convnet", "Tower.", sorted(nets_factory.NETS))
    head: str = _field("absdiff", "absdiff: |f_a - f_b| -> dense; euclidean: ||f_a - f_b||.", list(siamese.HEADS))
    head_units: int = _field(128, "absdiff head: units of the dense layer.")
    l2_normalize: bool = _field(True, "L2-normalize tower features (fixes the margin's scale).")
    epsilon: float = _field(1e-6, "Added under the square root of the distance.")
    image_size: int = _field(64, "Side of the square network input, in pixels.")
    crop: str = _field(preprocessing.DEFAULT_CROP, "Face box (preprocessing.parse_crop).")
    moving_average_decay: float = _field(0.0, "Keep an exponential moving average of the weights with "
                                         "this decay (FaceNet/TF-Slim style; e.g. 0.999) for validation "
                                         "and inference; 0: off.")
    # the objective
    margin: float = _field(1.0, "Contrastive-loss margin m (> 0).")
    weight_decay: float = _field(0.0, "Weight decay of the conv and dense weights (0: none): weight_decay * "
                                 "l2_loss(w) added to the loss, as TF-Slim and FaceNet do.")
    identity_loss_weight: float = _field(0.0, "Weight of an identity-classification loss beside the contrastive "
                                         "one (0: off): CosFace's large-margin cosine loss over the training "
                                         "people, one class a person across the --records_dir folders "
                                         "(siamese.cosine_margin_loss).")
    identity_loss_scale: float = _field(24.0, "Identity loss: the scale s of the cosine logits.")
    identity_loss_margin: float = _field(0.2, "Identity loss: the cosine margin m taken off the true class.")
    identity_loss_min_photos: int = _field(2, "Identity loss: the fewest training photos a person needs for a "
                                           "class (1: every person).")
    distill_from: str = _field("", "Knowledge distillation: a packaged model's name or a train_dir whose "
                               "features of every training photo (computed once before training, "
                               "training/teacher.py) the student's features are asked to point along; "
                               "empty: off.")
    distill_weight: float = _field(1.0, "With --distill_from: the weight of the distillation loss (the mean "
                                   "of 1 - cos(student's features, teacher's); siamese.distillation_loss).")
    loss_pairs: str = _field("given", "given: the contrastive loss over the batch's pairs; all: over every "
                             "(image_a[i], image_b[j]) pair of the batch, labelled by identity, same and "
                             "different pairs averaged apart (siamese.contrastive_loss_all_pairs); "
                             "active: as all, the different pairs averaged over those inside the margin.",
                             list(LOSS_PAIRS))
    # the input
    batch_size: int = _field(64, "Pairs per batch (even: half same, half different).")
    augment: bool = _field(False, "Training augmentation.")
    rotation_deg: float = _field(preprocessing.DEFAULT_ROTATION_DEG, "Random rotation, degrees.")
    scale_jitter: float = _field(preprocessing.SCALE_JITTER, "With --augment: each crop box scaled by a random "
                                 "factor in [1 - this, 1 + this] (zoom in and out).")
    gray_prob: float = _field(0.0, "With --augment: chance an image is made grayscale.")
    lowres_prob: float = _field(0.0, "With --augment: chance an image is made low-resolution (1/2 or 1/4 "
                                "of the side and back).")
    border_prob: float = _field(0.0, "With --augment: chance an image gets a tight face crop's black border "
                                "(as aligning a crop leaves it: each edge in by up to 30%).")
    shuffle_buffer: int = _field(2048, "Records in the record-level shuffle buffer.")
    cache: bool = _field(False, "Decode each training photo once and make pairs in memory (pairs.py).")
    seed: int = _field(0, "Seed for shuffling, pairing, augmentation and initial weights.")
    # the arithmetic
    mixed_precision: str = _field("auto", "bfloat16: grappler's oneDNN auto mixed precision computes the "
                                  "training step's convolutions and batch norms in bfloat16 (matmuls, "
                                  "weights and checkpoints stay float32; fast on CPUs with AVX512_BF16 or AMX); "
                                  "none: float32; auto: bfloat16 where the CPU has bfloat16 arithmetic "
                                  "(AVX512_BF16 or AMX), float32 elsewhere (logged at start).",
                                  list(MIXED_PRECISION))
    # the optimizer
    lr_schedule: str = _field("cyclic", "Learning-rate schedule.", ["cyclic", "constant"])
    learning_rate: float = _field(1e-3, "constant schedule: the learning rate.")
    lr_min: float = _field(1e-4, "cyclic: lowest learning rate.")
    lr_max: float = _field(1e-3, "cyclic: highest learning rate.")
    beta1_min: float = _field(0.85, "cyclic: lowest Adam beta1 (at the highest learning rate).")
    beta1_max: float = _field(0.95, "cyclic: highest Adam beta1; the constant schedule's beta1.")
    cycle_steps: int = _field(2000, "cyclic: steps in one cycle.")

    def model_config(self):
        """What inference needs to rebuild the network (model.json's keys)."""
        return {k: getattr(self, k) for k in nets_factory.MODEL_KEYS}

    @property
    def distills(self):
        """Whether the run trains with a teacher (distill_from set, its loss weighted)."""
        return bool(self.distill_from) and self.distill_weight > 0

    def check(self):
        """ArgumentError for a value no graph can be built with (every float finite first)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ArgumentError(f.name, value, "must be a finite number")
        for name in ("learning_rate", "lr_min", "lr_max"):
            if not getattr(self, name) > 0:
                raise ArgumentError(name, getattr(self, name), "must be > 0")
        if self.lr_max < self.lr_min:
            raise ArgumentError("lr_max", self.lr_max, "must be at least --%s=%g" % ("lr_min", self.lr_min))
        for name in ("beta1_min", "beta1_max"):
            if not 0 <= getattr(self, name) < 1:
                raise ArgumentError(name, getattr(self, name), "must be in [0, 1)")
        if self.beta1_max < self.beta1_min:
            raise ArgumentError("beta1_max", self.beta1_max, "must be at least --%s=%g" % ("beta1_min", self.beta1_min))
        if self.cycle_steps < 1:
            raise ArgumentError("cycle_steps", self.cycle_steps, "must be at least 1")
        if self.rotation_deg < 0 or self.rotation_deg > 180:
            raise ArgumentError("rotation_deg", self.rotation_deg, "must be in [0, 180]")
        if self.margin <= 0:
            raise ArgumentError("margin", self.margin, "must be > 0")
        if self.epsilon <= 0:
            raise ArgumentError("epsilon", self.epsilon, "must be > 0")
        if not 0 <= self.moving_average_decay < 1:
            raise ArgumentError("moving_average_decay", self.moving_average_decay, "must be in [0, 1)")
        if self.head not in siamese.HEADS:
            raise ArgumentError("head", self.head, "choose from %s" % ", ".join(siamese.HEADS))
        if self.mixed_precision not in MIXED_PRECISION:
            raise ArgumentError("mixed_precision", self.mixed_precision,
                                "choose from %s" % ", ".join(MIXED_PRECISION))
        if self.loss_pairs not in LOSS_PAIRS:
            raise ArgumentError("loss_pairs", self.loss_pairs, "choose from %s" % ", ".join(LOSS_PAIRS))
        if self.head_units < 1:
            raise ArgumentError("head_units", self.head_units, "must be at least 1")
        if self.identity_loss_weight < 0:
            raise ArgumentError("identity_loss_weight", self.identity_loss_weight, "must be >= 0 (0: off)")
        if self.identity_loss_scale <= 0:
            raise ArgumentError("identity_loss_scale", self.identity_loss_scale, "must be > 0")
        if not 0 <= self.identity_loss_margin < 1:
            raise ArgumentError("identity_loss_margin", self.identity_loss_margin, "must be in [0, 1)")
        if self.identity_loss_min_photos < 1:
            raise ArgumentError("identity_loss_min_photos", self.identity_loss_min_photos, "must be at least 1")
        if not (self.distill_weight >= 0 and math.isfinite(self.distill_weight)):
            raise ArgumentError("distill_weight", self.distill_weight, "must be a finite number >= 0")
        if self.weight_decay < 0:
            raise ArgumentError("weight_decay", self.weight_decay, "must be >= 0")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ArgumentError("batch_size", self.batch_size, "must be even and at least 2 (half same, "
                                "half different pairs)")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ArgumentError("batch_size", self.batch_size, "at most %d pairs a step" % MAX_BATCH_SIZE)
        if not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ArgumentError("image_size", self.image_size, "must be in 1..%d pixels" % MAX_IMAGE_SIZE)
        for name in ("gray_prob", "lowres_prob", "border_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ArgumentError(name, getattr(self, name), "must be in [0, 1]")
        if not 0 <= self.scale_jitter < 1:
            raise ArgumentError("scale_jitter", self.scale_jitter, "must be in [0, 1)")
        if self.shuffle_buffer < 1:
            raise ArgumentError("shuffle_buffer", self.shuffle_buffer, "must be at least 1")
        if self.distill_from:
            from siamese_graph.training import teacher  # it restores models: imported when asked for
            teacher.resolve(self.distill_from)
        preprocessing.parse_crop(self.crop)
        nets_factory.network_fn_from_config(self.model_config())


    def check_memory(self, total_bytes):
        """ArgumentError when a step's activations alone would not fit in total_bytes
        (this machine's memory; None: unknown, not checked)."""
        need = self.memory_floor()
        if total_bytes and need > 0.8 * total_bytes:
            raise ArgumentError("image_size", self.image_size, "with --%s=%d a step needs at least %.1f "
                                "GiB of activations, more than this machine's %.1f GiB can hold; lower either"
                                % ("batch_size", self.batch_size, need / 2 ** 30, total_bytes / 2 ** 30))

    def memory_floor(self):
        """A lower bound, in bytes, of the activations one training step holds:
        2 x batch_size images through the tower, each keeping at least 20 floats
        per input value (the first block's conv, batch norm and ReLU outputs for
        the backward pass, 16 channels against the input's 3). An estimate to
        refuse sizes no machine here can run, not a measurement."""
        return 2 * self.batch_size * self.image_size ** 2 * 3 * 4 * 20


# TrainConfig: the fields above plus every net's options, declared by the nets.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(name, type(default), _field(default, nets_factory.OPTION_HELP[name]))
                    for name, default in nets_factory.OPTIONS.items()], bases=(_Fields,))
TrainConfig.__module__, TrainConfig.__doc__ = __name__, _Fields.__doc__
