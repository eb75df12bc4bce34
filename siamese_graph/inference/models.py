"""Restores a train_dir's checkpoint into a fresh inference graph (no training ops,
no pair pipeline), rebuilt from the model.json that train.py saved.

    model = models.Model("runs/convnet")
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
import os

import numpy as np
import tensorflow as tf

from siamese_graph import fileio
from siamese_graph.data import preprocessing, records
from siamese_graph.errors import DataError
from siamese_graph.faces import gate, mtcnn_nets
from siamese_graph.model import siamese, traindir
from siamese_graph.model.nets import nets_factory
from siamese_graph.progress import Progress

v1 = tf.compat.v1


def verdict(distance, threshold, face_a=1.0, face_b=1.0, min_face_probability=gate.MIN_FACE_PROBABILITY):
    """A pair's answer: "no_face" when either photo's face probability is below
    min_face_probability (no verdict without a face), else "same" when the distance is
    at or below the threshold, "different" above it, "uncalibrated" without one."""
    if not (face_a >= min_face_probability and face_b >= min_face_probability) or not np.isfinite(distance):
        return "no_face"
    if threshold is None:
        return "uncalibrated"
    return "same" if distance <= threshold else "different"


def features(images, tower_fn, l2_normalize, flip_average, reuse=None):
    """The inference tower: finished images [N, S, S, 3] -> features [N, D].

    Args:
      images: preprocessed (preprocessing.finish) float images.
      tower_fn: the network function (nets_factory), run with training off.
      l2_normalize: the model's setting (model.json).
      flip_average: the mean of each image's and its mirror image's features (one
        tower pass over both), L2-normalized again when the model normalizes.
      reuse: reuse the tower's variables (a second tower in the same graph).
    Returns:
      float32 [N, D].
    """
    if not flip_average:
        return siamese.tower(images, tower_fn, False, l2_normalize, reuse=reuse)
    n = tf.shape(images)[0]
    both = siamese.tower(tf.concat([images, tf.reverse(images, axis=[2])], 0), tower_fn, False,
                         l2_normalize, reuse=reuse)
    mean = (both[:n] + both[n:]) / 2
    return tf.math.l2_normalize(mean, axis=1, epsilon=1e-10) if l2_normalize else mean


MODEL_SCOPES = ("tower/", "head/")


def check_variables(ckpt, graph_shapes):
    """DataError unless the checkpoint's network variables (under MODEL_SCOPES, not
    optimizer slots or moving averages) are exactly the ones model.json's network
    builds, with the same shapes: an edited model.json (another head, net or size)
    restores partly and scores with other distances otherwise, or fails deep in
    TensorFlow. graph_shapes: {variable name: shape list} of the built graph."""
    try:
        saved_shapes = tf.train.load_checkpoint(ckpt).get_variable_to_shape_map()
        saved = set(saved_shapes)
    except Exception:  # noqa: BLE001 - traindir.check_checkpoint names damage; restore reports it again
        return
    model_vars = lambda names: {n for n in names if n.startswith(MODEL_SCOPES) and "/ExponentialMovingAverage" not in n
                                and "/Adam" not in n}
    graph_names = set(graph_shapes)
    extra, missing = sorted(model_vars(saved) - model_vars(graph_names)), sorted(model_vars(graph_names) - model_vars(saved))
    if extra or missing:
        raise DataError("%s: checkpoint variables do not match model.json (%s); was model.json edited?" % (
            ckpt, "; ".join(x for x in (
                "the checkpoint has %d model.json does not build, e.g. %s" % (len(extra), extra[0]) if extra else "",
                "model.json builds %d the checkpoint lacks, e.g. %s" % (len(missing), missing[0]) if missing else "")
                if x)))
    reshaped = sorted(n for n in model_vars(graph_names) if list(saved_shapes[n]) != list(graph_shapes[n]))
    if reshaped:
        n = reshaped[0]
        raise DataError("%s: checkpoint variables do not match model.json (%s is %s in the checkpoint, %s as "
                        "model.json builds it: its image_size or sizes differ from the run's); was model.json edited?"
                        % (ckpt, n, list(saved_shapes[n]), list(graph_shapes[n])))


def restore(sess, ckpt, config):
    """Restores ckpt into sess's graph (built from config): the moving averages of
    the trainable weights where the run kept them, as FaceNet does.
    Raises DataError when the variables do not match."""
    check_variables(ckpt, {v.op.name: v.shape.as_list() for v in v1.global_variables()})
    if config.get("moving_average_decay"):
        saver = v1.train.Saver(siamese.averaged_variables_to_restore(
            siamese.moving_averages(config["moving_average_decay"], None)))
    else:
        saver = v1.train.Saver()
    try:
        saver.restore(sess, ckpt)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
        raise DataError("%s: checkpoint variables do not match model.json (%s)"
                        % (ckpt, str(e).splitlines()[0][:150]))


class Inference:
    """What the API and the commands ask of a restored model, whatever it was restored
    from (Model: a train_dir; exported.ExportedModel: a SavedModel): the methods
    embed(photos, with_faces), distance(features_a, features_b) and threshold(); the
    attributes checkpoint_dir, checkpoint, weights_id, crop, flip_average,
    feature_dim and config (its "head"); sess, encoded (a JPEG string placeholder)
    and decoded (it decoded as records are). On top of them, the work both share:"""

    def decode(self, jpeg):
        """JPEG bytes -> uint8 [H, W, 3], decoded as embed decodes records."""
        try:
            return self.sess.run(self.decoded, {self.encoded: jpeg})
        except tf.errors.InvalidArgumentError as e:
            raise DataError("unreadable JPEG (%s)" % str(e).splitlines()[0][:80])

    def embed_unique(self, keys, load, with_faces=False):
        """Features of each distinct key, computed once.

        Args:
          keys: photo keys (paths, record file names), repeats allowed.
          load: key -> photo for embed (load_photo, loader.PhotoLoader, or a dict's get for
            record bytes).
        Returns:
          ({key: row}, features [distinct keys, D]), and face probabilities [distinct keys]
          with_faces.
        """
        unique = sorted(set(keys))
        progress, photos = Progress(len(unique), "photos read"), []
        for k in unique:
            photos.append(load(k))
            progress.update(len(photos))
        index = {k: i for i, k in enumerate(unique)}
        if with_faces:
            return (index,) + self.embed(photos, with_faces=True)
        return index, self.embed(photos)

    def pair_distances(self, pairs, load, with_faces=False):
        """Dw [N] of (key_a, key_b) pairs, each distinct photo embedded once.

        Returns (distances, number of distinct photos), and with_faces the face
        probabilities of the a and b photos [N] each."""
        index, feats, probs = self.embed_unique([k for pair in pairs for k in pair[:2]], load, True)
        ia, ib = [index[p[0]] for p in pairs], [index[p[1]] for p in pairs]
        d = self.distance(feats[ia], feats[ib])
        return (d, len(index), probs[ia], probs[ib]) if with_faces else (d, len(index))


class Model(Inference):
    """A trained siamese network, restored for inference."""

    def __init__(self, checkpoint_dir, crop=None, batch_size=64, flip_average=True, checkpoint_path=None):
        """Args:
          checkpoint_dir: a train_dir (model.json and checkpoints).
          checkpoint_path: the checkpoint to restore (traindir.resolve_checkpoint); None: the latest.
          crop: a crop spec for these photos (preprocessing.parse_crop); None: the model's own.
          batch_size: photos a tower pass.
          flip_average: features are the mean of a photo's and its mirror image's.
        Every photo's face probability (face_gate: MTCNN's ONet on the box where
        the crop puts the face) is computed beside its features.
        Raises DataError for a missing folder, checkpoint or model.json, or a
        checkpoint that does not match model.json; DamagedCheckpoint for one
        that cannot be read back.
        """
        ckpt = traindir.resolve_checkpoint(checkpoint_dir, checkpoint_path)
        traindir.check_checkpoint(ckpt)
        self.config = c = traindir.load_config(checkpoint_dir)
        self.checkpoint_dir, self.checkpoint = checkpoint_dir, ckpt
        self.image_size = c["image_size"]
        self.crop = preprocessing.parse_crop(crop or c["crop"])
        self.batch_size = batch_size
        self.flip_average = flip_average
        tower_fn = nets_factory.network_fn_from_config(c)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.photo = v1.placeholder(tf.uint8, [None, None, 3], "photo")
            self.encoded = v1.placeholder(tf.string, [], "encoded_jpeg")
            box = preprocessing.boxes(self.crop)
            self.cropped = preprocessing.crop_resize(self.photo, self.image_size, box)
            self.decoded = preprocessing.decode(self.encoded)
            self.cropped_jpeg = preprocessing.crop_resize(self.decoded, self.image_size, box)
            onet = mtcnn_nets.weights("onet")
            face_box = gate.face_box(self.crop, preprocessing.parse_crop(c["crop"]))
            self.face_prob = gate.face_probability(self.photo, face_box, onet)
            self.face_prob_jpeg = gate.face_probability(self.decoded, face_box, onet)
            self.batch = v1.placeholder(tf.float32, [None, self.image_size, self.image_size, 3], "batch")
            self.features = self._features(preprocessing.finish(self.batch), tower_fn)
            self.feature_dim = dim = int(self.features.shape[-1])
            self.fa = v1.placeholder(tf.float32, [None, dim], "features_a")
            self.fb = v1.placeholder(tf.float32, [None, dim], "features_b")
            self.dw = siamese.distance(self.fa, self.fb, c["head"], c["head_units"], c["epsilon"])
            self.sess = v1.Session(graph=self.graph)
            restore(self.sess, ckpt, c)
        tail = os.path.basename(ckpt).rsplit("-", 1)[-1]
        self.step = int(tail) if tail.isdigit() else None
        # The index file holds every tensor's checksum: its hash identifies the weights.
        self.weights_id = records.sha256(ckpt + ".index")

    def _features(self, images, tower_fn):
        return features(images, tower_fn, self.config["l2_normalize"], self.flip_average)

    def _crop(self, photo):
        """(crop [S, S, 3], face probability) of one photo; (None, 0.0) for None (no face)."""
        if photo is None:
            return None, 0.0
        if isinstance(photo, bytes):
            try:
                crop, prob = self.sess.run([self.cropped_jpeg, self.face_prob_jpeg], {self.encoded: photo})
            except tf.errors.InvalidArgumentError as e:
                raise DataError("unreadable JPEG (%s)" % str(e).splitlines()[0][:80])
        else:
            crop, prob = self.sess.run([self.cropped, self.face_prob], {self.photo: photo})
        return crop[0], float(prob)

    def embed(self, photos, with_faces=False):
        """Photos from load_photo or loader.PhotoLoader (JPEG bytes, uint8 [H, W, 3] of any
        size, or None for a photo without a face) -> features [N, D] (NaN rows for None);
        with_faces: (features, face probabilities [N], 0 for None)."""
        out, probs = [], []
        dim = self.features.shape[-1]
        progress = Progress(len(photos), "photos")
        for i in range(0, len(photos), self.batch_size):
            progress.update(i)
            crops = [self._crop(p) for p in photos[i:i + self.batch_size]]
            probs += [p for _, p in crops]
            real = [c for c, _ in crops if c is not None]
            feats = np.full([len(crops), dim], np.nan, np.float32)
            if real:
                feats[[j for j, (c, _) in enumerate(crops) if c is not None]] = self.sess.run(
                    self.features, {self.batch: np.stack(real)})
            out.append(feats)
        feats = np.concatenate(out) if out else np.zeros([0, dim], np.float32)
        return (feats, np.array(probs, np.float32)) if with_faces else feats

    def distance(self, features_a, features_b):
        """Dw [N] for paired rows of two feature arrays."""
        return self.sess.run(self.dw, {self.fa: features_a, self.fb: features_b})

    def threshold(self):
        """The calibrated threshold saved by `evaluate --calibrate`, or None.

        Raises DataError when it was calibrated with the other flip_average."""
        path = os.path.join(self.checkpoint_dir, traindir.THRESHOLD_FILE)
        if not os.path.exists(path):
            return None
        saved = records.read_json(path, "threshold file")
        if not isinstance(saved, dict) or not isinstance(saved.get("threshold"), (int, float)):
            raise DataError("%s: not a valid threshold file (no number 'threshold'); calibrate again "
                            "with evaluate" % path)
        threshold = traindir.check_threshold(saved["threshold"], path)
        if saved.get("flip_average", self.flip_average) != self.flip_average:
            raise DataError("%s: calibrated with flip_average=%s; score with the same setting, or "
                            "pass a threshold" % (path, saved["flip_average"]))
        if "crop" in saved and (not isinstance(saved["crop"], list) or len(saved["crop"]) != 4 or
                                not np.allclose(saved["crop"], self.crop, atol=1e-6)):
            raise DataError("%s: calibrated with another crop (%s); score with that crop, or pass a threshold"
                            % (path, saved["crop"]))
        return threshold

    def save_threshold(self, threshold, source):
        """Writes CHECKPOINT_DIR/threshold.json atomically (with the crop and flip setting it
        was calibrated with); returns its path. Raises DataError for a threshold no
        verdict can use (traindir.check_threshold)."""
        path = os.path.join(self.checkpoint_dir, traindir.THRESHOLD_FILE)
        traindir.check_threshold(threshold, "calibration on %s" % source)
        fileio.write_json(path, {"threshold": threshold, "checkpoint": os.path.basename(self.checkpoint),
                                 "flip_average": self.flip_average, "crop": [float(v) for v in self.crop],
                                 "calibrated_on": source},
                          sort_keys=False)
        return path
