"""TFLite models for a phone: conversion and a checked runner.
"""
import numpy as np
import tensorflow as tf

v1 = tf.compat.v1


def tflite_bytes(saved_model_dir, quantize):
    """A TFLite flatbuffer of the face-in SavedModel's signatures.

    quantize: None (float32) or "dynamic" (dynamic-range: int8 weights, float activations)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=["embed", "compare", "verify"])
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def tflite_interpreter(model_path, num_threads=1):
    """A TFLite interpreter: LiteRT's (ai-edge-litert, which the package installs), else
    tf.lite's where LiteRT is absent (deprecated in TF 2.21 in favour of LiteRT, but the
    same runtime)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        with warnings.catch_warnings():  # its deprecation notice, once per model, says the above
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=model_path, num_threads=num_threads)
    return Interpreter(model_path=model_path, num_threads=num_threads)


class TFLiteModel:
    """An exported .tflite model: embed, compare and verify on faces from phone_face.

    Every call checks its input before the interpreter sees it (ValueError naming
    the argument): a float array [N, S, S, 3] with N >= 1 and S the model's input
    side, every value finite and in [0, 1] (phone_face's range); features
    [N, D] finite, both sides the same N. The phone app's contract (docs/serving.md)
    is the same check."""

    def __init__(self, model_path, num_threads=1):
        self.interpreter = tflite_interpreter(model_path, num_threads)
        self.runners = {k: self.interpreter.get_signature_runner(k) for k in ("embed", "compare", "verify")}
        details = self.runners["embed"].get_input_details()["face"]
        self.image_size = int(details["shape_signature"][1])
        self.dim = int(self.runners["compare"].get_input_details()["features_a"]["shape_signature"][1])

    def _faces(self, faces, name):
        a = np.asarray(faces)
        s = self.image_size
        if a.ndim != 4 or a.shape[1:] != (s, s, 3) or a.shape[0] < 1:
            raise ValueError("%s: expected faces of shape [N >= 1, %d, %d, 3] (RGB), got %s"
                             % (name, s, s, list(a.shape)))
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError("%s: expected float faces in [0, 1] (phone.phone_face), got %s" % (name, a.dtype))
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError("%s: %d values are not finite" % (name, int((~np.isfinite(a)).sum())))
        if a.min() < 0 or a.max() > 1:
            raise ValueError("%s: values must be in [0, 1] (pixel / 255), got %g..%g" % (name, a.min(), a.max()))
        return a

    def _features(self, feats, name):
        a = np.asarray(feats)
        if a.ndim != 2 or a.shape[1] != self.dim or a.shape[0] < 1:
            raise ValueError("%s: expected features of shape [N >= 1, %d], got %s" % (name, self.dim, list(a.shape)))
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError("%s: features are not finite" % name)
        return a

    @staticmethod
    def _same_n(a, b, names):
        if len(a) != len(b):
            raise ValueError("%s and %s hold %d and %d rows" % (names[0], names[1], len(a), len(b)))

    def embed(self, faces):
        return self.runners["embed"](face=self._faces(faces, "face"))["features"]

    def compare(self, features_a, features_b):
        fa, fb = self._features(features_a, "features_a"), self._features(features_b, "features_b")
        self._same_n(fa, fb, ("features_a", "features_b"))
        return self.runners["compare"](features_a=fa, features_b=fb)["distance"]

    def verify(self, faces_a, faces_b):
        fa, fb = self._faces(faces_a, "face_a"), self._faces(faces_b, "face_b")
        self._same_n(fa, fb, ("face_a", "face_b"))
        return self.runners["verify"](face_a=fa, face_b=fb)["distance"]
