r"""Exports per-photo embeddings of a folder-per-person directory for TensorBoard's projector.

  python -m siamese_graph.embed --checkpoint_dir=runs/convnet --folder=PEOPLE_DIR --output_dir=emb

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
from absl import flags

from siamese_graph import common_flags, fileio, inference
from siamese_graph.datasets import folder as folder_layout
from siamese_graph.errors import UserError

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "folder", "output_dir")
FLAGS = flags.FLAGS


def tsv_field(text):
    """text with backslashes, tabs and line breaks escaped (a TSV field is one cell)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def main(argv):
    del argv
    tf.compat.v1.disable_eager_execution()
    if not (FLAGS.folder and FLAGS.output_dir):
        raise UserError("--checkpoint_dir, --folder and --output_dir are required")
    fileio.check_writable_dir(FLAGS.output_dir, "output_dir")
    items = [(path, person) for person, paths in folder_layout.walk(FLAGS.folder) for path in paths]
    model = common_flags.restored_model()
    feats = model.embed([inference.load_photo(p) for p, _ in items]).astype(np.float32)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    with fileio.atomic_write(os.path.join(FLAGS.output_dir, "embeddings.npy"), "wb") as f:
        np.save(f, feats)
    fileio.write_text(os.path.join(FLAGS.output_dir, "embeddings.tsv"),
                      "".join("\t".join("%.6g" % v for v in row) + "\n" for row in feats))
    fileio.write_text(os.path.join(FLAGS.output_dir, "metadata.tsv"),
                      "person\tfile\n" + "".join("%s\t%s\n" % (person, tsv_field(os.path.relpath(p, FLAGS.folder)))
                                                 for p, person in items))
    print(json.dumps({"photos": len(items), "dimensions": int(feats.shape[1]),
                      "output_dir": FLAGS.output_dir, "head": model.config["head"]}))


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
