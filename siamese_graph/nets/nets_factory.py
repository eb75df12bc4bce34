"""Maps a --net name to a tower function (TF-Slim's nets_factory idea)."""
import functools

from siamese_graph.errors import UserError
from siamese_graph.nets import convnet, densenet

NETS = {
    "convnet": (convnet.convnet, convnet.MIN_IMAGE_SIZE, 16),
    "densenet121": (densenet.densenet121, densenet.MIN_IMAGE_SIZE, 32),
}


def get_network_fn(name, image_size, weight_decay=0.0, **kwargs):
    """Returns tower(images [B, S, S, 3], training: bool) -> features [B, D].

    kwargs go to the net (densenet121: growth_rate, theta, embedding_size; convnet:
    convnet_width, convnet_embedding).
    Raises UserError for an unknown name or an image size the net cannot take.
    """
    if name not in NETS:
        raise UserError("--net=%s: unknown tower (choose from %s)" % (name, ", ".join(sorted(NETS))))
    fn, min_size, multiple = NETS[name]
    if image_size < min_size or image_size % multiple:
        raise UserError("--image_size=%d is too small or not a multiple of %d for --net=%s "
                        "(at least %d)" % (image_size, multiple, name, min_size))
    if name == "densenet121":
        theta = kwargs.get("theta", 0.5)
        if not 0 < theta <= 1:
            raise UserError("--theta=%g: the compression factor must be in (0, 1]" % theta)
        kwargs.pop("convnet_width", None)
        kwargs.pop("convnet_embedding", None)
    else:
        kwargs = {"width": kwargs.get("convnet_width", 1.0),
                  "embedding_size": kwargs.get("convnet_embedding", 0)}
    return functools.partial(fn, weight_decay=weight_decay, **kwargs)
