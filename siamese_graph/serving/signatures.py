"""Serving graphs: photo-in signatures for a SavedModel (TF Serving), face-in
signatures for TFLite (a phone).

SavedModel signatures, whole photos in (what a camera or a web page sends): the
face is found and aligned in the graph (faces/align_graph.py: MTCNN, FaceNet's
choice of face, the warp to CelebA's aligned 178x218 layout), as the commands'
--align=mtcnn does; then the crop, resize, standardization, flip-averaging and
the face check, as models.Model does:
  embed            images [N] string -> features [N, D], face [N] float32 (the
                   face check's probability; 0 where no face was found: its
                   features are then the black stand-in's, never to be used)
  verify (default) image_a [N] string, image_b [N] string -> distance [N] float32,
                   face_a, face_b [N] float32, same [N] bool (distance <= the
                   calibrated threshold and both face probabilities >=
                   MIN_FACE_PROBABILITY: never "same" without a face)
The same two for faces a client has aligned itself (178x218, as siamese-align
writes them), as --align=none takes them: embed_aligned (images) and
verify_aligned (image_a, image_b). And for features kept from embed (a gallery):
  compare          features_a [N, D], features_b [N, D] -> distance [N] float32
Inputs are refused with InvalidArgumentError naming the input: an empty batch,
and what serving/decode.py refuses (not a JPEG, PNG, GIF or BMP; over its size
limits, read from the header, a GIF's first frame included, before decoding).

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
from siamese_graph.faces import align_graph, gate, mtcnn_nets
from siamese_graph.inference import models
from siamese_graph.model import siamese
from siamese_graph.model.nets import nets_factory
from siamese_graph.serving import decode

v1 = tf.compat.v1


SERVE = v1.saved_model.tag_constants.SERVING


DEFAULT_SIGNATURE = v1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY


def photo_batch(encoded, image_size, crop, input_name, onet=None, mtcnn=None, framing=None):
    """Encoded photos [N] string -> (cropped, resized images float32 [N, S, S, 3] in [0, 1],
    face probabilities [N]). An empty batch fails with an InvalidArgumentError that
    names the input.

    Args:
      mtcnn: None for aligned faces (the face check on the crop's face box), or
        MTCNN's weights ({"pnet", "rnet", "onet"}) for whole photos: each face
        found and aligned first (a photo without one: probability 0).
      framing: the model's training crop (gate.face_box): where an aligned face's
        crop region is taken to show what it shows in the aligned layout. Whole
        photos are aligned here, so their face box is the template's.
    """
    box = preprocessing.boxes(crop)
    fbox = gate.face_box(crop, crop if mtcnn is not None else framing)
    onet = onet if onet is not None else mtcnn_nets.weights("onet")

    def one(x):
        photo = decode.decode_photo(x, input_name, exact_jpeg=mtcnn is not None)
        found = tf.constant(True)
        if mtcnn is not None:
            face = align_graph.find_and_align(photo, weights=mtcnn)
            photo, found = face["aligned"], face["found"]
        prob = tf.where(found, gate.face_probability(photo, fbox, onet), 0.0)
        return preprocessing.crop_resize(photo, image_size, box)[0], prob

    nonempty = tf.debugging.assert_positive(tf.size(encoded), message="%s: an empty batch" % input_name)
    with tf.control_dependencies([nonempty]):
        encoded = tf.identity(encoded)
    return tf.map_fn(one, encoded, fn_output_signature=(tf.TensorSpec([image_size, image_size, 3], tf.float32),
                                                        tf.TensorSpec([], tf.float32)),
                     parallel_iterations=16)


def _signature(inputs, outputs):
    return v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)


def _photo_signatures(config, crop, flip_average, threshold, onet, mtcnn, reuse):
    """(embed, verify) SignatureDefs on encoded photos (see photo_batch's mtcnn)."""
    tower_fn = nets_factory.network_fn_from_config(config)
    size, l2 = config["image_size"], config["l2_normalize"]
    framing = preprocessing.parse_crop(config["crop"])
    suffix = "" if mtcnn is not None else "_aligned"
    images = v1.placeholder(tf.string, [None], "images" + suffix)
    crops, face = photo_batch(images, size, crop, "images", onet, mtcnn, framing)
    features = models.features(preprocessing.finish(crops), tower_fn, l2, flip_average, reuse=reuse)
    image_a = v1.placeholder(tf.string, [None], "image_a" + suffix)
    image_b = v1.placeholder(tf.string, [None], "image_b" + suffix)
    same_length = tf.debugging.assert_equal(tf.size(image_a), tf.size(image_b), message=(
        "image_a and image_b must hold the same number of photos"))
    with tf.control_dependencies([same_length]):
        crops_a, face_a = photo_batch(image_a, size, crop, "image_a", onet, mtcnn, framing)
        crops_b, face_b = photo_batch(image_b, size, crop, "image_b", onet, mtcnn, framing)
    pair_features = models.features(preprocessing.finish(tf.concat([crops_a, crops_b], 0)), tower_fn, l2,
                                       flip_average, reuse=True)
    n = tf.size(image_a)
    distance = siamese.distance(pair_features[:n], pair_features[n:], config["head"], config["head_units"],
                                config["epsilon"], reuse=reuse)
    min_face = tf.constant(gate.MIN_FACE_PROBABILITY, tf.float32)
    same = tf.logical_and(tf.less_equal(distance, tf.constant(threshold, tf.float32)),
                          tf.logical_and(face_a >= min_face, face_b >= min_face), name="same" + suffix)
    verify = _signature({"image_a": image_a, "image_b": image_b},
                        {"distance": tf.identity(distance, "distance" + suffix), "same": same,
                         "face_a": tf.identity(face_a, "face_a" + suffix),
                         "face_b": tf.identity(face_b, "face_b" + suffix)})
    embed = _signature({"images": images}, {"features": tf.identity(features, "features" + suffix),
                                            "face": tf.identity(face, "face" + suffix)})
    return embed, verify


def build_photo_signatures(config, crop, flip_average, threshold):
    """Builds the photo-in serving graph in the default graph.

    Args:
      config: model.json's dict (traindir.load_config).
      crop: (top, left, height, width) fractions.
      flip_average: average each photo's features with its mirror image's.
      threshold: the distance at or below which `same` is true.
    Returns:
      {signature key: SignatureDef}: embed, verify and serving_default (= verify) on
      whole photos; embed_aligned and verify_aligned on aligned faces; compare on
      features.
    """
    # one copy of MTCNN's weights in the graph, shared by every input that uses them
    onet = mtcnn_nets.constants(mtcnn_nets.weights("onet"))
    mtcnn = {"pnet": mtcnn_nets.constants(mtcnn_nets.weights("pnet")),
             "rnet": mtcnn_nets.constants(mtcnn_nets.weights("rnet")), "onet": onet}
    embed, verify = _photo_signatures(config, crop, flip_average, threshold, onet, mtcnn, reuse=None)
    embed_aligned, verify_aligned = _photo_signatures(config, crop, flip_average, threshold, onet, None, reuse=True)
    return {"embed": embed, "verify": verify, DEFAULT_SIGNATURE: verify,
            "embed_aligned": embed_aligned, "verify_aligned": verify_aligned,
            "compare": _compare_signature(config, embed.outputs["features"].tensor_shape.dim[-1].size)}


def _compare_signature(config, dim):
    """features_a, features_b [N, D] -> distance [N]: the head alone (its variables reused)."""
    fa = v1.placeholder(tf.float32, [None, dim], "features_a")
    fb = v1.placeholder(tf.float32, [None, dim], "features_b")
    distance = siamese.distance(fa, fb, config["head"], config["head_units"], config["epsilon"], reuse=True)
    return _signature({"features_a": fa, "features_b": fb}, {"distance": distance})


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
