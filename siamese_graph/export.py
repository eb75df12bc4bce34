r"""Exports a trained model for serving: a SavedModel with photo-in signatures, and TFLite models.

  python -m siamese_graph.export --checkpoint_dir=runs/convnet --output_dir=exported/siamese
      [--version=N] [--overwrite] [--threshold=T] [--tflite]

Writes OUTPUT_DIR/N/, TF Serving's versioned layout (default N: one more than
the highest version there, or 1):
  saved_model.pb, variables/   the SavedModel (tf.compat.v1.saved_model.Builder;
                               the checkpoint's variables, moving averages where
                               the run kept them), signatures embed and verify
                               (also serving_default) on whole photos, the face
                               found in the graph, embed_aligned and
                               verify_aligned on aligned faces, compare on
                               features (serving/signatures.py)
  assets.extra/siamese.json    threshold, flip setting, crop, image size, head,
                               checkpoint and step
  tflite/ (with --tflite)      model_float.tflite, model_int8.tflite (dynamic-range),
                               preprocessing.json: the face tensor a phone app makes
                               (phone.phone_face is its reference)
The version is written under a temporary name and renamed when complete, so a
killed export never leaves a folder that TF Serving would load.
"""
import json
import os
import shutil
import tempfile

from absl import flags, logging

from siamese_graph import common_flags, fileio
from siamese_graph.errors import UserError
from siamese_graph.faces import gate
from siamese_graph.inference import models
from siamese_graph.serving import decode, signatures, tflite

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "threshold", "output_dir",
                     "overwrite")
flags.DEFINE_integer("version", None, "Version folder to write (TF Serving's OUTPUT_DIR/N); default: "
                     "one more than the highest there, or 1.")
flags.DEFINE_bool("tflite", False, "Also write float and dynamic-range int8 TFLite models (face tensors in).")
FLAGS = flags.FLAGS

TEMP_PREFIX = ".export-"


def versions(output_dir):
    """The version numbers present in output_dir (numeric folder names)."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(int(n) for n in os.listdir(output_dir) if n.isdigit())


def remove_stale_temps(output_dir):
    """Removes temporary folders of exports that died (their process is gone)."""
    for name in os.listdir(output_dir):
        if name.startswith(TEMP_PREFIX):
            pid = name[len(TEMP_PREFIX):].split("-")[0]
            if pid.isdigit() and not fileio.pid_alive(int(pid)):
                shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def metadata(model, threshold):
    return {"threshold": threshold, "flip_average": model.flip_average,
            "crop": list(model.crop), "image_size": model.image_size, "head": model.config["head"],
            "net": model.config["net"], "checkpoint": model.checkpoint, "step": model.step,
            "weights": model.weights_id, "input": "embed, verify: whole photos (the face is found and aligned "
            "in the graph); embed_aligned, verify_aligned: faces in CelebA's 178x218 aligned layout (siamese-align "
            "writes them)",
            "max_photo_pixels": decode.MAX_PHOTO_PIXELS, "max_photo_side": decode.MAX_PHOTO_SIDE,
            "min_face_probability": gate.MIN_FACE_PROBABILITY, "signatures": {
                "embed": "images [N] string -> features [N, D], face [N] float32",
                "verify": "image_a [N] string, image_b [N] string -> distance [N] float32, face_a [N], "
                          "face_b [N] float32, same [N] bool (false without a face)",
                "embed_aligned": "as embed, on aligned faces", "verify_aligned": "as verify, on aligned faces",
                "compare": "features_a [N, D], features_b [N, D] float32 -> distance [N] float32"}}


def write_tflite(folder, model):
    """tflite/: float and dynamic-range models, and preprocessing.json. Returns {name: bytes}."""
    os.makedirs(folder)
    faces = os.path.join(folder, ".face-savedmodel")
    signatures.write_saved_model(faces, model.checkpoint, model.config,
                              lambda: signatures.build_face_signatures(model.config, model.flip_average))
    sizes = {}
    for name, quantize in (("model_float.tflite", None), ("model_int8.tflite", "dynamic")):
        data = tflite.tflite_bytes(faces, quantize)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        sizes[name] = len(data)
    shutil.rmtree(faces)
    fileio.write_json(os.path.join(folder, "preprocessing.json"), {
        "input": "float32 [N, %d, %d, 3], RGB in [0, 1]" % (model.image_size, model.image_size),
        "crop": {"top": model.crop[0], "left": model.crop[1], "height": model.crop[2], "width": model.crop[3],
                 "units": "fractions of the photo's height and width"},
        "resize": "bilinear samples on an S x S grid whose corners are the crop box's corners "
                  "(tf.image.crop_and_resize; reference: siamese_graph.serving.phone.phone_face)",
        "in_model": "per-image standardization%s" % (" and flip-averaging" if model.flip_average else ""),
        "signatures": {"embed": "face -> features", "compare": "features_a, features_b -> distance",
                       "verify": "face_a, face_b -> distance"},
        "image_size": model.image_size}, sort_keys=False)
    return sizes


def main(argv):
    del argv  # eager stays on for the TFLite converter; every graph here is built in its own tf.Graph
    if not FLAGS.output_dir:
        raise UserError("--checkpoint_dir and --output_dir are required")
    if FLAGS.version is not None and FLAGS.version < 1:
        raise UserError("--version=%d: must be at least 1" % FLAGS.version)
    fileio.check_writable_dir(FLAGS.output_dir, "output_dir")
    present = versions(FLAGS.output_dir)
    version = FLAGS.version or (max(present) + 1 if present else 1)
    final = os.path.join(FLAGS.output_dir, str(version))
    if os.path.exists(final) and not FLAGS.overwrite:
        raise UserError("%s: version %d exists; pass --overwrite to replace it, or another --version"
                        % (final, version))
    model = common_flags.restored_model()
    if not isinstance(model, models.Model):
        raise UserError("--checkpoint_dir=%s: already an exported SavedModel; export from the train_dir it came from"
                        % FLAGS.checkpoint_dir)
    threshold = common_flags.threshold_for(model)
    if threshold is None:
        raise UserError("%s: no calibrated threshold (run evaluate --calibrate, or pass --threshold)"
                        % FLAGS.checkpoint_dir)
    with fileio.exclusive(FLAGS.output_dir, "export"):  # one writer of an export folder at a time
        write_version(model, threshold, version, final)


def write_version(model, threshold, version, final):
    """Writes the SavedModel (and TFLite) version under a temporary name, then renames it."""
    remove_stale_temps(FLAGS.output_dir)
    temp = tempfile.mkdtemp(prefix="%s%d-" % (TEMP_PREFIX, os.getpid()), dir=FLAGS.output_dir)
    try:
        saved = os.path.join(temp, "model")
        info = metadata(model, threshold)
        signatures.write_saved_model(
            saved, model.checkpoint, model.config,
            lambda: signatures.build_photo_signatures(model.config, model.crop, model.flip_average, threshold),
            {"siamese.json": json.dumps(info, indent=1) + "\n"})
        if FLAGS.tflite:
            info["tflite_bytes"] = write_tflite(os.path.join(saved, "tflite"), model)
        fileio.fsync_tree(saved)
        if os.path.exists(final):  # --overwrite: the old version leaves only once the new one is whole
            old = os.path.join(temp, "old")
            os.replace(final, old)
        os.replace(saved, final)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    logging.info("exported %s (step %s) to %s", model.checkpoint, model.step, final)
    print(json.dumps({"saved_model": final, "version": version, "threshold": threshold,
                      "flip_average": model.flip_average, "head": model.config["head"],
                      "tflite": info.get("tflite_bytes")}, indent=1))


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
