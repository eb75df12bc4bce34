r"""Scores photo pairs with a trained checkpoint: distance and a same/different verdict.

  python -m siamese_graph.score --checkpoint_dir=runs/convnet A.jpg B.jpg
  python -m siamese_graph.score --checkpoint_dir=runs/convnet --pairs=pairs.txt [--image_root=DIR]
      [--format=tsv|json] [--output=scores.tsv]

The verdict uses the threshold saved by `evaluate --calibrate` (or --threshold):
"same" when the distance is at or below it. Photos: any format and size Pillow
reads, grayscale or RGB; --crop matches another framing to the training crop
(e.g. center:0.6 for LFW's 250x250 photos); the default is the model's own.
Each distinct photo goes through the tower once.
"""
import json
import os
import sys

import tensorflow as tf
from absl import flags

from siamese_graph import common_flags, fileio, inference, pair_lists
from siamese_graph.errors import DataError, UserError

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "threshold", "pairs", "image_root")
flags.DEFINE_enum("format", "tsv", ["tsv", "json"], "Output format for --pairs.")
flags.DEFINE_string("output", None, "Write the scores here instead of stdout (written atomically).")
FLAGS = flags.FLAGS


def score(model, pairs, threshold):
    """[{a, b, distance, verdict}] for (path_a, path_b, ...) pairs."""
    d, _ = model.pair_distances(pairs, inference.load_photo)
    verdict = lambda x: "uncalibrated" if threshold is None else ("same" if x <= threshold else "different")
    return [{"a": p[0], "b": p[1], "distance": float(x), "verdict": verdict(x)} for p, x in zip(pairs, d)]


def main(argv):
    tf.compat.v1.disable_eager_execution()
    photos = argv[1:]
    if bool(FLAGS.pairs) == bool(photos):
        raise UserError("give two photos, or --pairs=FILE")
    if photos and len(photos) != 2:
        raise UserError("give exactly two photos (got %d)" % len(photos))
    if FLAGS.output:
        fileio.check_writable_file(FLAGS.output, "output")
    if FLAGS.pairs:
        pairs = pair_lists.read_list(FLAGS.pairs, FLAGS.image_root, labelled=False)
    else:
        for p in photos:
            if not os.path.isfile(p):
                raise DataError("%s: photo not found" % p)
        pairs = [tuple(photos)]
    model = common_flags.restored_model()
    threshold = common_flags.threshold_for(model)
    if threshold is None:
        print("warning: no calibrated threshold in %s (run evaluate --calibrate, or pass --threshold)"
              % FLAGS.checkpoint_dir, file=sys.stderr)
    rows = score(model, pairs, threshold)
    if not FLAGS.pairs:
        r = rows[0]
        print("distance %.4f  %s%s" % (r["distance"], r["verdict"],
                                       "" if threshold is None else " (threshold %.4f)" % threshold))
        return
    if FLAGS.format == "json":
        text = json.dumps({"threshold": threshold, "pairs": rows}, indent=1) + "\n"
    else:
        text = "path_a\tpath_b\tdistance\tverdict\n" + "".join(
            "%s\t%s\t%.6f\t%s\n" % (r["a"], r["b"], r["distance"], r["verdict"]) for r in rows)
    if FLAGS.output:
        fileio.write_text(FLAGS.output, text)
    else:
        sys.stdout.write(text)


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
