"""Serving graphs: photo-in signatures for a SavedModel (TF Serving), face-in
signatures for TFLite (a phone), and the Python reference of a phone's preprocessing.

SavedModel signatures (encoded aligned faces in: photos in CelebA's aligned
178x218 layout, as `siamese-align` or align.Detector + align.warp_face make them
from any photo; decoding, crop, resize, standardization, flip-averaging and the
face check in the graph, exactly as models.Model does for RGB JPEGs):
  embed            images [N] string -> features [N, D] (the tower's features),
                   face [N] float32 (face_gate's face probability)
  verify (default) image_a [N] string, image_b [N] string -> distance [N] float32,
                   face_a, face_b [N] float32, same [N] bool (distance <= the
                   calibrated threshold and both face probabilities >=
                   MIN_FACE_PROBABILITY: never "same" without a face)
Inputs are refused with InvalidArgumentError naming the input: an empty batch,
bytes that are not a JPEG, PNG, GIF or BMP, and photos over MAX_PHOTO_PIXELS
pixels or MAX_PHOTO_SIDE on a side, read from the header before decoding.

TFLite signatures (the phone's camera pipeline decodes and crops; see
phone_face): faces are float32 [N, S, S, 3], RGB in [0, 1], the crop box resized
to S x S bilinearly. Standardization and flip-averaging are inside the model.
  embed    face [N, S, S, 3] -> features [N, D]
  compare  features_a [N, D], features_b [N, D] -> distance [N] (enrolled vs probe)
  verify   face_a, face_b [N, S, S, 3] -> distance [N]
"""
import os

import tensorflow as tf

from siamese_graph.data import preprocessing
from siamese_graph.faces import gate
from siamese_graph.inference import models
from siamese_graph.model import siamese
from siamese_graph.model.nets import nets_factory

v1 = tf.compat.v1


SERVE = v1.saved_model.tag_constants.SERVING


DEFAULT_SIGNATURE = v1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY


FORMATS = "JPEG, PNG, GIF or BMP"


MAX_PHOTO_PIXELS = 25_000_000  # a served photo's limit, checked in its header before decoding


MAX_PHOTO_SIDE = 10_000


def _is_image(encoded):
    """True for the first bytes of a JPEG, PNG, GIF or BMP file."""
    head = tf.strings.substr(encoded, 0, 4)
    return tf.reduce_any(tf.stack([
        tf.io.is_jpeg(encoded), tf.equal(head, b"\x89PNG"), tf.equal(head, b"GIF8"),
        tf.equal(tf.strings.substr(encoded, 0, 2), b"BM")]))


def _header_size(encoded):
    """(height, width) int64 of an encoded photo from its header, without decoding it:
    JPEG with tf.image.extract_jpeg_shape, PNG (IHDR), GIF (logical screen) and BMP
    (BITMAPINFOHEADER) from their first 26 bytes."""
    def from_bytes():
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, 32), tf.uint8, fixed_length=32), tf.int64)
        be32 = lambda i: b[i] * 16777216 + b[i + 1] * 65536 + b[i + 2] * 256 + b[i + 3]
        le32 = lambda i: b[i + 3] * 16777216 + b[i + 2] * 65536 + b[i + 1] * 256 + b[i]
        signed = lambda v: tf.where(v >= 2 ** 31, v - 2 ** 32, v)
        head = tf.strings.substr(encoded, 0, 4)
        png = tf.equal(head, b"\x89PNG")
        gif = tf.equal(head, b"GIF8")
        h = tf.where(png, be32(20), tf.where(gif, b[8] + 256 * b[9], tf.abs(signed(le32(22)))))
        w = tf.where(png, be32(16), tf.where(gif, b[6] + 256 * b[7], tf.abs(signed(le32(18)))))
        return tf.stack([h, w])

    return tf.cond(tf.io.is_jpeg(encoded),
                   lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64), from_bytes)


def _first_bytes(encoded):
    """The first 8 bytes as numbers (an error message must not echo raw bytes)."""
    return tf.io.decode_raw(tf.strings.substr(encoded, 0, 8), tf.uint8, fixed_length=8)


def decode_photo(encoded, input_name):
    """One encoded photo (scalar string) -> uint8 [H, W, 3].

    JPEG is decoded as the records are (preprocessing.decode); PNG, GIF (first
    frame) and BMP with tf.io.decode_image. Grayscale becomes three equal
    channels; transparent pixels show white (on_white), as in the commands. An empty or unknown string, or a photo over
    MAX_PHOTO_PIXELS or MAX_PHOTO_SIDE (read from its header), fails with an
    InvalidArgumentError that names the input."""
    check = tf.debugging.Assert(_is_image(encoded), [
        "%s: an element is empty or not a %s image; its first bytes:" % (input_name, FORMATS),
        _first_bytes(encoded)])
    with tf.control_dependencies([check]):
        size = _header_size(encoded)
    small = tf.debugging.Assert(
        tf.logical_and(tf.reduce_all(size >= 1), tf.logical_and(
            tf.reduce_all(size <= MAX_PHOTO_SIDE), size[0] * size[1] <= MAX_PHOTO_PIXELS)),
        ["%s: a photo is over the served limit of %d pixels (%d on a side) or has no pixels; "
         "height, width:" % (input_name, MAX_PHOTO_PIXELS, MAX_PHOTO_SIDE), size])
    with tf.control_dependencies([small]):
        return tf.cond(tf.io.is_jpeg(encoded), lambda: preprocessing.decode(encoded),
                       lambda: on_white(tf.io.decode_image(encoded, expand_animations=False)))


def on_white(image):
    """uint8 [H, W, C] with C in 1..4 (gray, gray + alpha, RGB, RGBA) -> uint8 [H, W, 3]
    as a viewer shows it: transparent pixels composited on white, as photos.to_rgb
    does (within a grey level of Pillow's rounding)."""
    channels = tf.shape(image)[-1]
    x = tf.cast(image, tf.float32)
    colour = tf.cond(channels >= 3, lambda: x[..., :3], lambda: tf.tile(x[..., :1], [1, 1, 3]))
    alpha = tf.cond(tf.equal(channels % 2, 0), lambda: x[..., -1:] / 255.0, lambda: tf.ones_like(x[..., :1]))
    return tf.cast(tf.round(colour * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def photo_batch(encoded, image_size, crop, input_name, onet=None):
    """Encoded photos [N] string -> (cropped, resized images float32 [N, S, S, 3] in [0, 1],
    face probabilities [N] (face_gate on the face box of the crop)). An empty batch
    fails with an InvalidArgumentError that names the input."""
    box = preprocessing.boxes(crop)
    fbox = gate.face_box(crop)
    onet = onet if onet is not None else gate.onet_weights()

    def one(x):
        photo = decode_photo(x, input_name)
        return (preprocessing.crop_resize(photo, image_size, box)[0],
                gate.face_probability(photo, fbox, onet))

    nonempty = tf.debugging.assert_positive(tf.size(encoded), message="%s: an empty batch" % input_name)
    with tf.control_dependencies([nonempty]):
        encoded = tf.identity(encoded)
    return tf.map_fn(one, encoded, fn_output_signature=(tf.TensorSpec([image_size, image_size, 3], tf.float32),
                                                        tf.TensorSpec([], tf.float32)),
                     parallel_iterations=16)


def _signature(inputs, outputs):
    return v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)


def build_photo_signatures(config, crop, flip_average, threshold):
    """Builds the photo-in serving graph in the default graph.

    Args:
      config: model.json's dict (traindir.load_config).
      crop: (top, left, height, width) fractions.
      flip_average: average each photo's features with its mirror image's.
      threshold: the distance at or below which `same` is true.
    Returns:
      {signature key: SignatureDef}: embed, verify and serving_default (= verify).
    """
    tower_fn = nets_factory.network_fn_from_config(config)
    size, l2 = config["image_size"], config["l2_normalize"]
    onet = gate.onet_weights()
    images = v1.placeholder(tf.string, [None], "images")
    crops, face = photo_batch(images, size, crop, "images", onet)
    features = models.features(preprocessing.finish(crops), tower_fn, l2, flip_average)
    image_a = v1.placeholder(tf.string, [None], "image_a")
    image_b = v1.placeholder(tf.string, [None], "image_b")
    same_length = tf.debugging.assert_equal(tf.size(image_a), tf.size(image_b), message=(
        "image_a and image_b must hold the same number of photos"))
    with tf.control_dependencies([same_length]):
        crops_a, face_a = photo_batch(image_a, size, crop, "image_a", onet)
        crops_b, face_b = photo_batch(image_b, size, crop, "image_b", onet)
    pair_features = models.features(preprocessing.finish(tf.concat([crops_a, crops_b], 0)), tower_fn, l2,
                                       flip_average, reuse=True)
    n = tf.size(image_a)
    distance = siamese.distance(pair_features[:n], pair_features[n:], config["head"], config["head_units"],
                                config["epsilon"])
    min_face = tf.constant(gate.MIN_FACE_PROBABILITY, tf.float32)
    same = tf.logical_and(tf.less_equal(distance, tf.constant(threshold, tf.float32)),
                          tf.logical_and(face_a >= min_face, face_b >= min_face), name="same")
    verify = _signature({"image_a": image_a, "image_b": image_b},
                        {"distance": tf.identity(distance, "distance"), "same": same,
                         "face_a": tf.identity(face_a, "face_a"), "face_b": tf.identity(face_b, "face_b")})
    return {"embed": _signature({"images": images}, {"features": tf.identity(features, "features"),
                                                     "face": tf.identity(face, "face")}),
            "verify": verify, DEFAULT_SIGNATURE: verify}


def build_face_signatures(config, flip_average):
    """Builds the face-in graph (for TFLite) in the default graph.

    Returns {signature key: SignatureDef}: embed, compare and verify (see the module doc)."""
    tower_fn = nets_factory.network_fn_from_config(config)
    size, l2 = config["image_size"], config["l2_normalize"]
    face = v1.placeholder(tf.float32, [None, size, size, 3], "face")
    features = models.features(preprocessing.finish(face), tower_fn, l2, flip_average)
    dim = features.shape[-1]
    fa = v1.placeholder(tf.float32, [None, dim], "features_a")
    fb = v1.placeholder(tf.float32, [None, dim], "features_b")
    compared = siamese.distance(fa, fb, config["head"], config["head_units"], config["epsilon"])
    face_a = v1.placeholder(tf.float32, [None, size, size, 3], "face_a")
    face_b = v1.placeholder(tf.float32, [None, size, size, 3], "face_b")
    both = models.features(preprocessing.finish(tf.concat([face_a, face_b], 0)), tower_fn, l2,
                              flip_average, reuse=True)
    n = tf.shape(face_a)[0]
    verified = siamese.distance(both[:n], both[n:], config["head"], config["head_units"], config["epsilon"],
                                reuse=True)
    return {"embed": _signature({"face": face}, {"features": features}),
            "compare": _signature({"features_a": fa, "features_b": fb}, {"distance": compared}),
            "verify": _signature({"face_a": face_a, "face_b": face_b}, {"distance": verified})}


def write_saved_model(path, ckpt, config, build, assets_extra=None):
    """Restores ckpt into a fresh graph made by build() and writes a SavedModel at path.

    Args:
      path: the SavedModel folder (must not exist).
      ckpt: checkpoint prefix; config: its model.json dict.
      build: a function that builds the graph and returns {key: SignatureDef}.
      assets_extra: {file name: text} written into path/assets.extra (files the
        graph does not load; TF Serving's place for a model's own metadata).
    """
    graph = tf.Graph()
    with graph.as_default():
        signatures = build()
        with v1.Session(graph=graph) as sess:
            models.restore(sess, ckpt, config)
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(sess, [SERVE], signature_def_map=signatures,
                                                 strip_default_attrs=True)
            builder.save()
    if assets_extra:
        os.makedirs(os.path.join(path, "assets.extra"))
        for name, text in assets_extra.items():
            with open(os.path.join(path, "assets.extra", name), "w") as f:
                f.write(text)
