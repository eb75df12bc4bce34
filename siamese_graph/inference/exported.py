"""An exported SavedModel (siamese-export's OUTPUT_DIR/N) restored for inference, with
models.Model's interface: what api.load_model returns for a SavedModel folder, so
that the API and the photo commands run on what TF Serving would serve.

    model = exported.ExportedModel("exported/siamese")   # the highest version, or .../1
    features, faces = model.embed([aligned face uint8 [218, 178, 3], ...], with_faces=True)
    distances = model.distance(features[:1], features[1:])

Faces go in through the SavedModel's embed_aligned signature (PNG-encoded, so the
pixels arrive unchanged; JPEG bytes as they are), distances through compare: the
crop, standardization, flip-averaging and face check are the exported graph's.
The threshold, crop and flip setting are the export's (assets.extra/siamese.json);
asking for another crop or flip setting is refused, since they are inside the graph.
"""
import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from siamese_graph.data import preprocessing, records
from siamese_graph.errors import DataError
from siamese_graph.inference import models
from siamese_graph.progress import Progress

v1 = tf.compat.v1

METADATA = os.path.join("assets.extra", "siamese.json")
NEEDED = ("embed_aligned", "compare")


def _is_version(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def find(path):
    """The SavedModel folder of path: path itself (holding saved_model.pb), or the
    highest numbered version under it (TF Serving's layout); None when neither."""
    if _is_version(path):
        return path
    if os.path.isdir(path):
        numbered = sorted((int(n) for n in os.listdir(path) if n.isdigit() and _is_version(os.path.join(path, n))))
        if numbered:
            return os.path.join(path, str(numbered[-1]))
    return None


def _png(face):
    out = io.BytesIO()
    Image.fromarray(np.asarray(face, np.uint8), "RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


class ExportedModel(models.Inference):
    """A SavedModel written by siamese-export, restored into its own graph and session."""

    def __init__(self, path, crop=None, flip_average=None, batch_size=64):
        """Args:
          path: a SavedModel version folder, or an export's output folder (its highest version).
          crop, flip_average: None, or what the export was made with (checked).
        Raises DataError for a folder without a SavedModel, one that siamese-export did
        not write (no assets.extra/siamese.json, or without the signatures used here),
        or a crop or flip setting other than the export's."""
        folder = find(path)
        if folder is None:
            raise DataError("%s: no SavedModel there (no saved_model.pb, nor a numbered version holding one)"
                            % path)
        meta_path = os.path.join(folder, METADATA)
        if not os.path.exists(meta_path):
            raise DataError("%s: not written by siamese-export (no %s)" % (folder, METADATA))
        self.meta = meta = records.read_json(meta_path, "export metadata")
        self.checkpoint_dir = self.path = folder
        self.checkpoint, self.step, self.weights_id = meta.get("checkpoint"), meta.get("step"), meta.get("weights")
        self.crop = tuple(float(v) for v in meta["crop"])
        self.flip_average = bool(meta["flip_average"])
        self.image_size = meta["image_size"]
        self.config = {"head": meta["head"], "net": meta.get("net"), "image_size": self.image_size}
        if crop is not None and not np.allclose(preprocessing.parse_crop(crop), self.crop, atol=1e-6):
            raise DataError("%s: exported with the crop %s, inside its graph; another crop needs another export"
                            % (folder, list(self.crop)))
        if flip_average is not None and bool(flip_average) != self.flip_average:
            raise DataError("%s: exported with flip_average=%s, inside its graph; the other setting needs "
                            "another export" % (folder, self.flip_average))
        self.batch_size = batch_size
        self.graph = tf.Graph()
        self.sess = v1.Session(graph=self.graph)
        with self.graph.as_default():
            try:
                meta_graph = v1.saved_model.loader.load(self.sess, [v1.saved_model.tag_constants.SERVING], folder)
            except (OSError, RuntimeError, tf.errors.OpError) as e:
                raise DataError("%s: the SavedModel cannot be loaded (%s)" % (folder, str(e).splitlines()[0][:150]))
        missing = [k for k in NEEDED if k not in meta_graph.signature_def]
        if missing:
            raise DataError("%s: no %s signature (exported by an older version: export it again)"
                            % (folder, ", ".join(missing)))
        embed, compare = (meta_graph.signature_def[k] for k in NEEDED)
        self._images = embed.inputs["images"].name
        self._features, self._face = embed.outputs["features"].name, embed.outputs["face"].name
        self._fa, self._fb = compare.inputs["features_a"].name, compare.inputs["features_b"].name
        self._distance = compare.outputs["distance"].name
        self.feature_dim = int(embed.outputs["features"].tensor_shape.dim[-1].size)
        with self.graph.as_default():  # Inference.decode's, for evaluate --degrade on records
            self.encoded = v1.placeholder(tf.string, [], "jpeg_to_decode")
            self.decoded = preprocessing.decode(self.encoded)

    def embed(self, photos, with_faces=False):
        """Aligned faces (uint8 [H, W, 3], JPEG or PNG bytes, or None for a photo without
        a face) -> features [N, D] (NaN rows for None); with_faces: (features, face
        probabilities [N], 0 for None)."""
        feats = np.full([len(photos), self.feature_dim], np.nan, np.float32)
        probs = np.zeros([len(photos)], np.float32)
        real = [i for i, p in enumerate(photos) if p is not None]
        progress = Progress(len(real), "photos")
        for start in range(0, len(real), self.batch_size):
            progress.update(start)
            rows = real[start:start + self.batch_size]
            encoded = [photos[i] if isinstance(photos[i], bytes) else _png(photos[i]) for i in rows]
            try:
                f, p = self.sess.run([self._features, self._face], {self._images: encoded})
            except tf.errors.InvalidArgumentError as e:
                raise DataError("%s: a photo was refused (%s)" % (self.path, str(e).splitlines()[0][:120]))
            feats[rows], probs[rows] = f, p
        return (feats, probs) if with_faces else feats

    def distance(self, features_a, features_b):
        """Dw [N] for paired rows of two feature arrays (the compare signature)."""
        return self.sess.run(self._distance, {self._fa: features_a, self._fb: features_b})

    def threshold(self):
        """The threshold the export's `same` uses."""
        return self.meta.get("threshold")
