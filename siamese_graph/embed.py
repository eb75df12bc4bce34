r"""Exports per-photo embeddings of a folder-per-person directory for TensorBoard's projector.

  python -m siamese_graph.embed --checkpoint_dir=runs/convnet --folder=PEOPLE_DIR --output_dir=emb

Writes embeddings.npy ([N, D] float32: the tower output, L2-normalized when the
model was trained so), embeddings.tsv (the same as tab-separated rows, what the
projector loads) and metadata.tsv (a header, then person and file per row).
Photos go through --align (default mtcnn); photos without a face are left out
and listed in the printed summary.
With --head=euclidean models the embedding distance is the model's distance;
with absdiff models it is the tower feature the head compares.
"""
import io
import json
import os

import numpy as np
from absl import flags

from siamese_graph import api, common_flags, fileio
from siamese_graph.errors import UserError

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "folder", "output_dir", "align",
                     "min_face_probability")
FLAGS = flags.FLAGS


def tsv_field(text):
    """text with backslashes, tabs and line breaks escaped (a TSV field is one cell)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def main(argv):
    del argv
    if not (FLAGS.folder and FLAGS.output_dir):
        raise UserError("--checkpoint_dir, --folder and --output_dir are required")
    common_flags.refuse_threshold("embed", "it writes features, not verdicts")
    fileio.check_writable_dir(FLAGS.output_dir, "output_dir")
    model = common_flags.restored_model()
    items, feats, no_face = api.embed_people(FLAGS.folder, model, common_flags.photo_loader(),
                                             FLAGS.min_face_probability)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    npy = io.BytesIO()
    np.save(npy, feats)
    out = lambda name: os.path.join(FLAGS.output_dir, name)
    fileio.write_set({  # the three files are one output: all of this run's, or the earlier ones
        out("embeddings.npy"): npy.getvalue(),
        out("embeddings.tsv"): "".join("\t".join("%.6g" % v for v in row) + "\n" for row in feats),
        out("metadata.tsv"): "person\tfile\n" + "".join(
            "%s\t%s\n" % (person, tsv_field(os.path.relpath(p, FLAGS.folder))) for p, person in items),
    })
    print(json.dumps({"photos": len(items), "dimensions": int(feats.shape[1]),
                      "output_dir": FLAGS.output_dir, "head": model.config["head"], "no_face": no_face}))


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
