"""Maps a net name to a tower function (TF-Slim's nets_factory).

    tower_fn = nets_factory.network_fn_from_config(model_config)
    features = tower_fn(images, training)   # [B, S, S, 3] -> [B, D]

A net is one module of this package plus one line in NETS. The module holds
`build(images, training, weight_decay, **options)`, `OPTIONS` ({name: (default,
help)}: each becomes a TrainConfig field, a flag of train and a model.json key),
`MIN_IMAGE_SIZE`, `SIZE_MULTIPLE`, and optionally `check_options(**options)`.
A model config is the dict train writes as TRAIN_DIR/model.json (MODEL_KEYS);
training and inference build their tower from it through the same function.
"""
import functools

from siamese_graph.errors import ArgumentError
from siamese_graph.model.nets import convnet, densenet

NETS = {
    "convnet": convnet,
    "densenet121": densenet,
}

# Every net's options, with their defaults (option names are unique across nets).
OPTIONS = {name: default for net in NETS.values() for name, (default, _) in net.OPTIONS.items()}
OPTION_HELP = {name: help_text for net in NETS.values() for name, (_, help_text) in net.OPTIONS.items()}
# What a trained model needs to be rebuilt: train saves these as model.json.
MODEL_KEYS = ("net", "head", "head_units", "l2_normalize", *OPTIONS, "epsilon", "image_size", "crop",
              "moving_average_decay")
# Keys a model.json written before them lacks, with the value they had then: an
# option is its net's default (a net's new option must default to what it built before).
LEGACY_DEFAULTS = dict(OPTIONS, moving_average_decay=0.0)


def get_network_fn(name, image_size, weight_decay=0.0, **options):
    """Returns tower(images [B, S, S, 3], training: bool) -> features [B, D].

    options: the net's OPTIONS by name (others' are ignored, missing ones take the
    default). Raises ArgumentError for an unknown name, an image size the net
    cannot take, or options it refuses.
    """
    if name not in NETS:
        raise ArgumentError("net", name, "unknown tower (choose from %s)" % ", ".join(sorted(NETS)))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ArgumentError(unknown[0], options[unknown[0]], "not an option of any net")
    net = NETS[name]
    if image_size < net.MIN_IMAGE_SIZE or image_size % net.SIZE_MULTIPLE:
        raise ArgumentError("image_size", image_size, "too small or not a multiple of %d for net %s "
                            "(at least %d)" % (net.SIZE_MULTIPLE, name, net.MIN_IMAGE_SIZE))
    own = {k: options.get(k, default) for k, (default, _) in net.OPTIONS.items()}
    if hasattr(net, "check_options"):
        net.check_options(**own)
    return functools.partial(net.build, weight_decay=weight_decay, **own)


def network_fn_from_config(config, weight_decay=0.0):
    """The tower of a model config with every MODEL_KEYS entry (traindir.load_config
    fills the ones older model.json files lack); see get_network_fn."""
    return get_network_fn(config["net"], config["image_size"], weight_decay,
                          **{k: config[k] for k in OPTIONS if k in config})
