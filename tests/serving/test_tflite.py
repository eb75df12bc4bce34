"""The TFLite runner (serving/tflite.py): a converted face-in model agrees with
itself across its three signatures, and every bad input is refused by name before
the interpreter sees it."""
import numpy as np
import pytest

from siamese_graph.inference import models
from siamese_graph.serving import signatures, tflite


@pytest.fixture(scope="module")
def tflite_model(tiny_model, tmp_path_factory):
    model = models.Model(tiny_model)
    path = str(tmp_path_factory.mktemp("tflite") / "faces")
    signatures.write_saved_model(path, model.checkpoint, model.config,
                                 lambda: signatures.build_face_signatures(model.config, model.flip_average))
    out = tmp_path_factory.mktemp("tflite") / "model.tflite"
    out.write_bytes(tflite.tflite_bytes(path, None))
    return tflite.TFLiteModel(str(out)), model.image_size


def test_verify_is_compare_of_embed(tflite_model):
    m, size = tflite_model
    assert type(m.interpreter).__module__.startswith("ai_edge_litert")  # LiteRT, installed with the package
    rng = np.random.RandomState(0)
    a, b = rng.uniform(0, 1, (3, size, size, 3)), rng.uniform(0, 1, (3, size, size, 3))
    fa, fb = m.embed(a), m.embed(b)
    assert fa.shape == (3, m.dim) and np.isfinite(fa).all()
    assert np.allclose(m.verify(a, b), m.compare(fa, fb), atol=1e-5)
    assert not np.allclose(fa[0], fb[0])  # the control: different faces, different features


@pytest.mark.parametrize("call,needle", [
    (lambda m, s: m.embed(np.zeros((1, s + 1, s, 3), np.float32)), "face: expected faces of shape"),
    (lambda m, s: m.embed(np.zeros((0, s, s, 3), np.float32)), "face: expected faces of shape"),
    (lambda m, s: m.embed(np.zeros((1, s, s, 3), np.uint8)), "face: expected float faces"),
    (lambda m, s: m.embed(np.full((1, s, s, 3), np.nan, np.float32)), "face: %d values are not finite"),
    (lambda m, s: m.embed(np.full((1, s, s, 3), 255.0, np.float32)), "face: values must be in [0, 1]"),
    (lambda m, s: m.verify(np.zeros((2, s, s, 3)), np.zeros((1, s, s, 3))), "face_a and face_b hold 2 and 1 rows"),
    (lambda m, s: m.compare(np.zeros((1, 3)), np.zeros((1, 3))), "features_a: expected features of shape"),
    (lambda m, s: m.compare(np.zeros((1, m.dim)), np.full((1, m.dim), np.inf)), "features_b: features are not finite"),
])
def test_bad_input_is_refused_by_name(tflite_model, call, needle):
    m, size = tflite_model
    if "%d" in needle:
        needle = needle % (size * size * 3)
    with pytest.raises(ValueError) as e:
        call(m, size)
    assert needle in str(e.value)
