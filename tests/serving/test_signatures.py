"""Serving signatures (serving/signatures.py): the SavedModel's photo-in and face-in
signatures as TF Serving and the TFLite converter see them."""
import pytest
import tensorflow as tf

from siamese_graph.inference import models
from siamese_graph.serving import signatures
from tests.serving.test_decode import _decode_all


def test_an_empty_batch_names_the_input():
    with pytest.raises(tf.errors.InvalidArgumentError, match="images: an empty batch"):
        _decode_all([], name="images")


def test_a_saved_model_holds_the_documented_signatures(tiny_model, tmp_path):
    """The names a TF Serving or TFLite client codes against (docs/serving.md), read
    back from the written SavedModel, with the restored weights in it."""
    model = models.Model(tiny_model)
    photo_in, face_in = str(tmp_path / "photos"), str(tmp_path / "faces")
    signatures.write_saved_model(photo_in, model.checkpoint, model.config,
                                 lambda: signatures.build_photo_signatures(model.config, model.crop, True, 0.5),
                                 assets_extra={"note.txt": "x"})
    signatures.write_saved_model(face_in, model.checkpoint, model.config,
                                 lambda: signatures.build_face_signatures(model.config, True))
    got = {}
    for path in (photo_in, face_in):
        meta = tf.compat.v1.saved_model.loader.load(tf.compat.v1.Session(graph=tf.Graph()), [signatures.SERVE], path)
        got[path] = {k: (sorted(v.inputs), sorted(v.outputs)) for k, v in meta.signature_def.items()}
    assert got[photo_in] == {
        "embed": (["images"], ["face", "features"]),
        "verify": (["image_a", "image_b"], ["distance", "face_a", "face_b", "same"]),
        signatures.DEFAULT_SIGNATURE: (["image_a", "image_b"], ["distance", "face_a", "face_b", "same"]),
        "embed_aligned": (["images"], ["face", "features"]),
        "verify_aligned": (["image_a", "image_b"], ["distance", "face_a", "face_b", "same"]),
        "compare": (["features_a", "features_b"], ["distance"])}
    assert got[face_in] == {"embed": (["face"], ["features"]), "compare": (["features_a", "features_b"], ["distance"]),
                            "verify": (["face_a", "face_b"], ["distance"])}
    assert (tmp_path / "photos" / "assets.extra" / "note.txt").read_text() == "x"
