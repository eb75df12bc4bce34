r"""Exports per-photo embeddings of a folder-per-person directory for TensorBoard's projector.

  python -m siamese_graph.export --checkpoint_dir=runs/convnet --folder=PEOPLE_DIR --output_dir=emb

Writes embeddings.npy ([N, D] float32: the tower output, L2-normalized when the
model was trained so), embeddings.tsv (the same as tab-separated rows, what the
projector loads) and metadata.tsv (a header, then person and file per row).
With --head=euclidean models the embedding distance is the model's distance;
with absdiff models it is the tower feature the head compares.
"""
import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags

from siamese_graph import inference
from siamese_graph.cli import define, run_main
from siamese_graph.errors import UserError
from siamese_graph.evaluate import folder_photos

inference.define_flags()
define("string", "folder", None, "Folder-per-person photos.")
define("string", "output_dir", None, "Where the .npy and .tsv files go.")
FLAGS = flags.FLAGS


def _atomic_write(path, write):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def main(argv):
    del argv
    tf.compat.v1.disable_eager_execution()
    if not (FLAGS.checkpoint_dir and FLAGS.folder and FLAGS.output_dir):
        raise UserError("--checkpoint_dir, --folder and --output_dir are required")
    items = folder_photos(FLAGS.folder)
    model = inference.model_from_flags()
    feats = model.embed([inference.load_photo(p) for p, _ in items]).astype(np.float32)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    _atomic_write(os.path.join(FLAGS.output_dir, "embeddings.npy"), lambda f: np.save(f, feats))
    _atomic_write(os.path.join(FLAGS.output_dir, "embeddings.tsv"), lambda f: f.write(
        "".join("\t".join("%.6g" % v for v in row) + "\n" for row in feats).encode()))
    _atomic_write(os.path.join(FLAGS.output_dir, "metadata.tsv"), lambda f: f.write(
        ("person\tfile\n" + "".join("%s\t%s\n" % (person, os.path.relpath(p, FLAGS.folder))
                                    for p, person in items)).encode()))
    print(json.dumps({"photos": len(items), "dimensions": int(feats.shape[1]),
                      "output_dir": FLAGS.output_dir, "head": model.config["head"]}))


if __name__ == "__main__":
    app.run(run_main(main))
