"""Trained models that ship inside the package (a model zoo, as TF-Slim's and
FaceNet's tables of pretrained checkpoints), and how one is made from a train_dir.

A packaged model is a small train_dir: model.json, one checkpoint holding only the
network's weights (the run's moving averages, saved under the weights' own names),
threshold.json (calibrated), and card.json (the data, command, commit, seed and
figures it was measured with). models.Model restores it like any train_dir.

    zoo.path()                  # the default model's folder
    zoo.card("convnet-celeba")  # its card
"""
import json
import os

import tensorflow as tf

from siamese_graph import fileio
from siamese_graph.errors import DataError
from siamese_graph.inference import models
from siamese_graph.model import siamese, traindir
from siamese_graph.model.nets import nets_factory

ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
DEFAULT = "convnet-celeba"
CARD_FILE = "card.json"

v1 = tf.compat.v1


def names():
    """The packaged models' names."""
    if not os.path.isdir(ZOO_DIR):
        return []
    return sorted(n for n in os.listdir(ZOO_DIR) if os.path.isfile(os.path.join(ZOO_DIR, n, CARD_FILE)))


def path(name=DEFAULT):
    """The folder of a packaged model (a train_dir models.Model restores)."""
    folder = os.path.join(ZOO_DIR, name)
    if not os.path.isfile(os.path.join(folder, CARD_FILE)):
        raise DataError("no packaged model %r (packaged: %s)" % (name, ", ".join(names()) or "none"))
    return folder


def card(name=DEFAULT):
    """A packaged model's card: {data, command, commit, seed, figures, ...}."""
    with open(os.path.join(path(name), CARD_FILE)) as f:
        return json.load(f)


def package(train_dir, out_dir, card_fields, checkpoint_path=None):
    """Writes a packaged model from a train_dir: the weights the model restores (the
    moving averages where the run kept them) saved under their own names, and
    nothing else (no optimizer slots, no step counter). Returns the card written.

    Args:
      train_dir: a finished train_dir with a calibrated threshold.json.
      out_dir: a new folder (must not exist).
      card_fields: {data, command, commit, seed, figures, ...} for card.json.
    """
    model = models.Model(train_dir, checkpoint_path=checkpoint_path)
    threshold = model.threshold()
    if threshold is None:
        raise DataError("%s: no calibrated threshold (calibrate it with siamese-evaluate first)" % train_dir)
    config = dict(model.config, moving_average_decay=0.0)
    tmp = out_dir + ".tmp"
    os.makedirs(tmp)
    graph = tf.Graph()
    with graph.as_default():
        tower_fn = nets_factory.network_fn_from_config(model.config)
        images = v1.placeholder(tf.float32, [None, model.image_size, model.image_size, 3])
        feats = models.features(images, tower_fn, model.config["l2_normalize"], False)
        siamese.distance(feats, feats, model.config["head"], model.config["head_units"], model.config["epsilon"])
        weights = [v for v in v1.global_variables() if v.op.name.startswith(models.MODEL_SCOPES)]
        with v1.Session(graph=graph) as sess:
            models.restore(sess, model.checkpoint, model.config)
            v1.train.Saver(weights, save_relative_paths=True).save(
                sess, os.path.join(tmp, "model.ckpt-%d" % (model.step or 0)), write_meta_graph=False)
    fileio.write_json(os.path.join(tmp, traindir.MODEL_FILE), config)
    fileio.write_json(os.path.join(tmp, traindir.THRESHOLD_FILE), {
        "threshold": threshold, "checkpoint": "model.ckpt-%d" % (model.step or 0), "flip_average": model.flip_average,
        "crop": [float(v) for v in model.crop], "calibrated_on": "the run's calibration, %s" % train_dir},
        sort_keys=False)
    size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp) if f.startswith("model.ckpt"))
    out = dict(card_fields, weights_bytes=size, threshold=threshold, image_size=model.image_size,
               net=model.config["net"], head=model.config["head"], crop=[float(v) for v in model.crop],
               source_checkpoint=os.path.basename(model.checkpoint))
    fileio.write_json(os.path.join(tmp, CARD_FILE), out, sort_keys=False)
    os.rename(tmp, out_dir)
    return out
