r"""Detects and aligns the faces of a photo folder (FaceNet's align_dataset_mtcnn).

  python -m siamese_graph.align --data_dir=../shared/data/celeba-mini-wild --output_dir=aligned/celeba-mini-wild
  python -m siamese_graph.align --dataset=folder --data_dir=PEOPLE --output_dir=aligned/people

CelebA's in-the-wild layout (img_celeba/, identity_CelebA.txt,
list_eval_partition.txt) becomes CelebA's aligned layout (img_align_celeba/ with
178x218 faces, and the two files listing the photos aligned); a folder-per-person
tree keeps its layout. The output is ready for make_records. One face a photo:
the largest nearest the centre when there are several; photos without a face are
skipped. OUTPUT_DIR/align_manifest.json lists every photo's outcome (box, 5
points, confidence, faces found, why one was kept; no face; unusable). Workers in
parallel (--runner=beam: an Apache Beam pipeline, the same outputs), progress
with ETA; a killed run resumes where it stopped.
"""
import json
import os

from absl import flags

from siamese_graph import common_flags, fileio
from siamese_graph.data import beam_writer
from siamese_graph.errors import UserError
from siamese_graph.faces import align, align_folder

common_flags.declare("output_dir", "seed", "overwrite", "dataset", "data_dir", "num_workers", "allow_missing",
                     "val_fraction", "test_fraction", "jpeg_quality", "runner", "beam_options")
flags.DEFINE_float("min_confidence", align.DEFAULT_MIN_CONFIDENCE, "MTCNN faces below this confidence do not count.")
flags.DEFINE_integer("max_side", align.DEFAULT_MAX_SIDE, "Detect on photos downscaled to this longer side, "
                     "48..%d (detection's memory grows with the square of it); the warp always reads the "
                     "full-size photo." % align.MAX_DETECT_SIDE)
flags.DEFINE_float("aligned_scale", 1.0, "Scale of the aligned layout: 1 writes CelebA's 178x218, 0.5 writes "
                   "89x109 (photos of half CelebA's resolution, such as celeba-10k-lowres, aligned at their own "
                   "resolution: nothing upsampled).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.data_dir or not FLAGS.output_dir:
        raise UserError("--data_dir and --output_dir are required")
    if FLAGS.num_workers < 1:
        raise UserError("--num_workers=%d: must be at least 1" % FLAGS.num_workers)
    if not 0 <= FLAGS.min_confidence <= 1:
        raise UserError("--min_confidence=%g: must be in [0, 1]" % FLAGS.min_confidence)
    if not 48 <= FLAGS.max_side <= align.MAX_DETECT_SIDE:
        raise UserError("--max_side=%d: must be in 48..%d (detection's memory grows with the photo's area: a "
                        "72-megapixel photo at full size took over 6 GB)" % (FLAGS.max_side, align.MAX_DETECT_SIDE))
    if not 1 <= FLAGS.jpeg_quality <= 100:
        raise UserError("--jpeg_quality=%d: must be in 1..100" % FLAGS.jpeg_quality)
    if not 0.1 <= FLAGS.aligned_scale <= 1:
        raise UserError("--aligned_scale=%g: must be in [0.1, 1]" % FLAGS.aligned_scale)
    if FLAGS.runner == "beam" and not beam_writer.available():
        raise UserError("--runner=beam needs Apache Beam: pip install '.[beam]'")
    data_dir = os.path.abspath(FLAGS.data_dir)
    fileio.check_output_outside(data_dir, FLAGS.output_dir)
    listing = common_flags.source_listing(data_dir, "align")
    with fileio.exclusive(FLAGS.output_dir, "siamese-align"):  # one writer of an output folder at a time
        manifest = align_folder.align_listing(listing, FLAGS.output_dir, FLAGS.dataset, FLAGS.num_workers,
                                              FLAGS.min_confidence, FLAGS.max_side, FLAGS.jpeg_quality,
                                              FLAGS.overwrite, FLAGS.runner, FLAGS.beam_options,
                                              FLAGS.aligned_scale)
    print(json.dumps({"output_dir": FLAGS.output_dir, "photos": manifest["photos_total"],
                      **manifest["counts"], "seconds_this_run": manifest["seconds_this_run"]}))


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
