"""Restores a train_dir's checkpoint into a fresh inference graph (no training ops,
no pair pipeline), rebuilt from the model.json that train.py saved.

    model = inference.Model("runs/convnet")
    features = model.embed([uint8 RGB array, ...])        # [N, D]
    distances = model.distance(features[:k], features[k:])  # [k]

Photos go through preprocessing.crop_resize and preprocessing.finish with
augmentation off: the same code as training. With flip_average (the default,
as in FaceNet's --use_flipped_images and most face-verification benchmarks) a
photo's features are the mean of the tower's outputs for the crop and its mirror
image, L2-normalized again when the model normalizes: one more tower pass per
photo, and a face then scores the same as its mirror image. Checkpoints trained
with --moving_average_decay are restored from the moving averages.
"""
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from siamese_graph import preprocessing, siamese
from siamese_graph.errors import UserError
from siamese_graph.nets import nets_factory

v1 = tf.compat.v1
THRESHOLD_FILE = "threshold.json"


def define_flags():
    """The flags every script that restores a train_dir shares (evaluate, score, gallery, export)."""
    from siamese_graph.cli import define

    define("string", "checkpoint_dir", None, "A train_dir written by siamese_graph.train.")
    define("string", "crop", None, "Face box for these photos; default: the one the model was trained with.")
    define("bool", "flip_average", True,
           "Average each photo's features with its mirror image's (two tower passes a photo).")


def model_from_flags():
    """A Model for --checkpoint_dir, --crop and --flip_average (see define_flags)."""
    from absl import flags

    f = flags.FLAGS
    return Model(f.checkpoint_dir, f.crop, flip_average=f.flip_average)


def load_photo(path):
    """A photo for Model.embed: the file's bytes when it is an RGB JPEG (decoded
    in the graph exactly as training decodes records), else a uint8 [H, W, 3]
    array from Pillow (any format, grayscale or RGB)."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG" and im.mode == "RGB":
                im.load()  # a corrupt file fails here, with its name
                with open(path, "rb") as f:
                    return f.read()
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UserError("%s: photo not found" % path)
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError("%s: unreadable photo (%s)" % (path, str(e).splitlines()[0][:80]))


class Model:
    """A trained siamese network, restored for inference."""

    def __init__(self, checkpoint_dir, crop=None, batch_size=64, flip_average=True):
        path = os.path.join(checkpoint_dir, "model.json")
        if not os.path.isdir(checkpoint_dir):
            raise UserError("%s: checkpoint folder not found" % checkpoint_dir)
        ckpt = tf.train.latest_checkpoint(checkpoint_dir)
        if not ckpt:
            raise UserError("%s: no checkpoint in this folder" % checkpoint_dir)
        if not os.path.isfile(path):
            raise UserError("%s: missing (a train_dir written by siamese_graph.train has it)" % path)
        with open(path) as f:
            self.config = json.load(f)
        self.checkpoint_dir, self.checkpoint = checkpoint_dir, ckpt
        c = self.config
        self.image_size = c["image_size"]
        self.crop = preprocessing.parse_crop(crop or c["crop"])
        self.batch_size = batch_size
        self.flip_average = flip_average
        tower_fn = nets_factory.get_network_fn(c["net"], c["image_size"], growth_rate=c["growth_rate"],
                                               theta=c["theta"], embedding_size=c["embedding_size"],
                                               convnet_width=c.get("convnet_width", 1.0),
                                               convnet_embedding=c.get("convnet_embedding", 0))
        v1.logging.set_verbosity(v1.logging.ERROR)  # "Restoring parameters from" noise
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.photo = v1.placeholder(tf.uint8, [None, None, 3], "photo")
            self.encoded = v1.placeholder(tf.string, [], "encoded_jpeg")
            box = preprocessing.boxes(self.crop)
            self.cropped = preprocessing.crop_resize(self.photo, self.image_size, box)
            self.cropped_jpeg = preprocessing.crop_resize(preprocessing.decode(self.encoded),
                                                          self.image_size, box)
            self.batch = v1.placeholder(tf.float32, [None, self.image_size, self.image_size, 3], "batch")
            self.features = self._features(preprocessing.finish(self.batch), tower_fn)
            dim = self.features.shape[-1]
            self.fa = v1.placeholder(tf.float32, [None, dim], "features_a")
            self.fb = v1.placeholder(tf.float32, [None, dim], "features_b")
            self.dw = siamese.distance(self.fa, self.fb, c["head"], c["head_units"], c["epsilon"])
            if c.get("moving_average_decay"):  # restore the averaged weights, as FaceNet does
                saver = v1.train.Saver(siamese.averaged_variables_to_restore(
                    siamese.moving_averages(c["moving_average_decay"], None)))
            else:
                saver = v1.train.Saver()
            self.sess = v1.Session(graph=self.graph)
            try:
                saver.restore(self.sess, ckpt)
            except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
                raise UserError("%s: checkpoint variables do not match model.json (%s)"
                                % (ckpt, str(e).splitlines()[0][:150]))
        self.step = int(ckpt.rsplit("-", 1)[1]) if "-" in ckpt else None

    def _features(self, images, tower_fn):
        """[N, S, S, 3] finished images -> features [N, D]."""
        if not self.flip_average:
            return siamese.tower(images, tower_fn, False, self.config["l2_normalize"])
        n = tf.shape(images)[0]
        both = siamese.tower(tf.concat([images, tf.reverse(images, axis=[2])], 0), tower_fn, False,
                             self.config["l2_normalize"])
        mean = (both[:n] + both[n:]) / 2
        return tf.math.l2_normalize(mean, axis=1, epsilon=1e-10) if self.config["l2_normalize"] else mean

    def _crop(self, photo):
        if isinstance(photo, bytes):
            try:
                return self.sess.run(self.cropped_jpeg, {self.encoded: photo})[0]
            except tf.errors.InvalidArgumentError as e:
                raise UserError("unreadable JPEG (%s)" % str(e).splitlines()[0][:80])
        return self.sess.run(self.cropped, {self.photo: photo})[0]

    def embed(self, photos):
        """Photos from load_photo (JPEG bytes or uint8 [H, W, 3], any sizes) -> features [N, D]."""
        out = []
        for i in range(0, len(photos), self.batch_size):
            crops = [self._crop(p) for p in photos[i:i + self.batch_size]]
            out.append(self.sess.run(self.features, {self.batch: np.stack(crops)}))
        return np.concatenate(out) if out else np.zeros([0, self.features.shape[-1]], np.float32)

    def distance(self, features_a, features_b):
        """Dw [N] for paired rows of two feature arrays."""
        return self.sess.run(self.dw, {self.fa: features_a, self.fb: features_b})

    def threshold(self):
        """The calibrated threshold saved by `evaluate --calibrate`, or None."""
        path = os.path.join(self.checkpoint_dir, THRESHOLD_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            saved = json.load(f)
        if saved.get("flip_average", self.flip_average) != self.flip_average:
            raise UserError("%s: calibrated with --flip_average=%s; score with the same setting, or "
                            "pass --threshold" % (path, saved["flip_average"]))
        return saved["threshold"]

    def save_threshold(self, threshold, source):
        path = os.path.join(self.checkpoint_dir, THRESHOLD_FILE)
        tmp = os.path.join(self.checkpoint_dir, "." + THRESHOLD_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"threshold": threshold, "checkpoint": os.path.basename(self.checkpoint),
                       "flip_average": self.flip_average, "calibrated_on": source}, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
        return path
