"""Maps a net name to a tower function (TF-Slim's nets_factory idea).

    tower_fn = nets_factory.network_fn_from_config(model_config)
    features = tower_fn(images, training)   # [B, S, S, 3] -> [B, D]

A model config is the dict train writes as TRAIN_DIR/model.json (MODEL_KEYS);
training and inference build their tower from it through the same function.
"""
import functools

from siamese_graph.errors import ArgumentError
from siamese_graph.model.nets import convnet, densenet

NETS = {
    "convnet": (convnet.convnet, convnet.MIN_IMAGE_SIZE, 16),
    "densenet121": (densenet.densenet121, densenet.MIN_IMAGE_SIZE, 32),
}

# What a trained model needs to be rebuilt: train saves these as model.json.
MODEL_KEYS = ("net", "head", "head_units", "l2_normalize", "convnet_width", "convnet_embedding",
              "embedding_size", "growth_rate", "theta", "epsilon", "image_size", "crop",
              "moving_average_decay")
# Keys added after the first model.json files were written, with the value they had then.
LEGACY_DEFAULTS = {"convnet_width": 1.0, "convnet_embedding": 0, "moving_average_decay": 0.0}


def get_network_fn(name, image_size, weight_decay=0.0, convnet_width=1.0, convnet_embedding=0,
                   embedding_size=32, growth_rate=32, theta=0.5):
    """Returns tower(images [B, S, S, 3], training: bool) -> features [B, D].

    convnet_width and convnet_embedding go to convnet; embedding_size,
    growth_rate and theta to densenet121. Raises ArgumentError for an unknown name or an
    image size the net cannot take.
    """
    if name not in NETS:
        raise ArgumentError("net", name, "unknown tower (choose from %s)" % ", ".join(sorted(NETS)))
    fn, min_size, multiple = NETS[name]
    if image_size < min_size or image_size % multiple:
        raise ArgumentError("image_size", image_size, "too small or not a multiple of %d for net %s "
                            "(at least %d)" % (multiple, name, min_size))
    if name == "densenet121":
        if not 0 < theta <= 1:
            raise ArgumentError("theta", theta, "the compression factor must be in (0, 1]")
        kwargs = {"growth_rate": growth_rate, "theta": theta, "embedding_size": embedding_size}
    else:
        kwargs = {"width": convnet_width, "embedding_size": convnet_embedding}
    return functools.partial(fn, weight_decay=weight_decay, **kwargs)


def network_fn_from_config(config, weight_decay=0.0):
    """The tower of a model config with every MODEL_KEYS entry (traindir.load_config
    fills the ones older model.json files lack); see get_network_fn."""
    c = config
    return get_network_fn(c["net"], c["image_size"], weight_decay, convnet_width=c["convnet_width"],
                          convnet_embedding=c["convnet_embedding"], embedding_size=c["embedding_size"],
                          growth_rate=c["growth_rate"], theta=c["theta"])
