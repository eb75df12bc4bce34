r"""Scores photo pairs with a trained checkpoint: distance and a same/different verdict.

  python -m siamese_graph.score --checkpoint_dir=runs/convnet A.jpg B.jpg
  python -m siamese_graph.score --checkpoint_dir=runs/convnet --pairs=pairs.txt [--image_root=DIR]
      [--format=tsv|json] [--output=scores.tsv]

The verdict uses the threshold saved by `evaluate --calibrate` (or --threshold):
"same" when the distance is at or below it. Photos: any format and size Pillow
reads, grayscale or RGB. By default (--align=mtcnn) each photo's face is detected
and aligned to the training layout first; --align=none takes photos already
framed like the training photos, and --crop matches another framing to the
training crop (e.g. center:0.6 for LFW's 250x250 photos). Each distinct photo goes
through the tower once.

No verdict without a face: when no face is found in a photo (MTCNN finds none, or
the face check of face_gate.py scores its face box below --min_face_probability)
the verdict is "no_face": for two photos, a line on stderr naming the photo and
exit status 3 (NO_FACE_EXIT); for --pairs, the row's verdict, and one line on
stderr naming every photo without a face (--format=json: also its "no_face" list).
"""
import json
import os
import sys

from absl import flags

from siamese_graph import api, common_flags, fileio
from siamese_graph.data import pair_lists
from siamese_graph.errors import DataError, UserError

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "threshold", "pairs", "image_root",
                     "align", "min_face_probability")
flags.DEFINE_enum("format", "tsv", ["tsv", "json"], "Output format for --pairs.")
flags.DEFINE_string("output", None, "Write the scores here instead of stdout (written atomically).")
FLAGS = flags.FLAGS
NO_FACE_EXIT = 3


def faceless(row, min_face_probability):
    """The photos of a no_face row that have no face."""
    return [row[k] for k in ("a", "b") if not row["face_" + k] >= min_face_probability] or [row["a"]]


def no_face_line(row, min_face_probability):
    """Which photos of a no_face row have no face."""
    return "no face found in %s: no verdict" % " and ".join(faceless(row, min_face_probability))


def main(argv):
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
    rows = api.score_pairs(pairs, model, threshold, common_flags.photo_loader(), FLAGS.min_face_probability)
    if not FLAGS.pairs:
        r = rows[0]
        if r["verdict"] == "no_face":
            print(no_face_line(r, FLAGS.min_face_probability), file=sys.stderr)
            print("no_face")
            sys.exit(NO_FACE_EXIT)
        print("distance %.4f  %s%s" % (r["distance"], r["verdict"],
                                       "" if threshold is None else " (threshold %.4f)" % threshold))
        return
    missing = sorted({p for r in rows if r["verdict"] == "no_face" for p in faceless(r, FLAGS.min_face_probability)})
    if missing:
        print("no face found in %d photos (their pairs: no_face): %s" % (len(missing), " ".join(missing)),
              file=sys.stderr)
    if FLAGS.format == "json":
        text = json.dumps({"threshold": threshold, "no_face": missing, "pairs": rows}, indent=1) + "\n"
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
