r"""Scores photo pairs with a trained checkpoint: distance and a same/different verdict.

  python -m siamese_graph.score --checkpoint_dir=runs/convnet A.jpg B.jpg
  python -m siamese_graph.score --checkpoint_dir=runs/convnet --pairs=pairs.txt [--image_root=DIR]
      [--format=tsv|json] [--output=scores.tsv]

The verdict uses the threshold saved by `evaluate --calibrate` (or --threshold):
"same" when the distance is at or below it. Photos: any format and size Pillow
reads, grayscale or RGB; --crop matches another framing to the training crop
(e.g. center:0.6 for LFW's 250x250 photos); the default is the model's own.
"""
import json
import os
import sys

import tensorflow as tf
from absl import app, flags

from siamese_graph import inference
from siamese_graph.cli import define, run_main
from siamese_graph.errors import UserError

inference.define_flags()
define("string", "image_root", "", "Folder the pairs file's photos are relative to.")
flags.DEFINE_string("pairs", None, "File of pairs, one per line: path_a path_b [anything else ignored].")
flags.DEFINE_enum("format", "tsv", ["tsv", "json"], "Output format for --pairs.")
flags.DEFINE_string("output", None, "Write the scores here instead of stdout (written atomically).")
define("float", "threshold", None, "Override the calibrated threshold.")
FLAGS = flags.FLAGS


def read_pairs(path, image_root):
    if not os.path.isfile(path):
        raise UserError("%s: pairs file not found" % path)
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) < 2:
                raise UserError("%s:%d: expected 'path_a path_b', got %r" % (path, lineno, line.strip()[:80]))
            a, b = (p if os.path.isabs(p) else os.path.join(image_root, p) for p in parts[:2])
            for p in (a, b):
                if not os.path.isfile(p):
                    raise UserError("%s:%d: photo %s not found" % (path, lineno, p))
            out.append((a, b))
    if not out:
        raise UserError("%s: no pairs" % path)
    return out


def score(model, pairs, threshold):
    paths = sorted({p for pair in pairs for p in pair})
    feats = model.embed([inference.load_photo(p) for p in paths])
    index = {p: i for i, p in enumerate(paths)}
    d = model.distance(feats[[index[a] for a, _ in pairs]], feats[[index[b] for _, b in pairs]])
    verdict = lambda x: "uncalibrated" if threshold is None else ("same" if x <= threshold else "different")
    return [{"a": a, "b": b, "distance": float(x), "verdict": verdict(x)} for (a, b), x in zip(pairs, d)]


def main(argv):
    tf.compat.v1.disable_eager_execution()
    photos = argv[1:]
    if not FLAGS.checkpoint_dir:
        raise UserError("--checkpoint_dir is required")
    if bool(FLAGS.pairs) == bool(photos):
        raise UserError("give two photos, or --pairs=FILE")
    if photos and len(photos) != 2:
        raise UserError("give exactly two photos (got %d)" % len(photos))
    pairs = read_pairs(FLAGS.pairs, FLAGS.image_root) if FLAGS.pairs else [tuple(photos)]
    model = inference.model_from_flags()
    threshold = FLAGS.threshold if FLAGS.threshold is not None else model.threshold()
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
        tmp = os.path.join(os.path.dirname(os.path.abspath(FLAGS.output)), "." + os.path.basename(FLAGS.output) + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, FLAGS.output)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    app.run(run_main(main))
