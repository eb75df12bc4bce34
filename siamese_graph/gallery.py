r"""Enroll people and identify probe photos: the phone-unlock use.

  python -m siamese_graph.gallery --checkpoint_dir=runs/convnet --enroll=PEOPLE_DIR --k=5 --gallery=g.npz
  python -m siamese_graph.gallery --checkpoint_dir=runs/convnet --gallery=g.npz PROBE.jpg [PROBE2.jpg ...]

Enrollment stores the tower features of the first k photos (sorted by name) of
each person folder, with the checkpoint's identity (its path, step and a hash of
its weights) and the flip setting; a gallery is refused with any other model or
setting. Identification compares a probe with every enrolled photo through the
model's head, scores each person by the mean distance to their photos, and
answers the nearest person, or "unknown" when that distance is above the
threshold saved by `evaluate --calibrate` (or --threshold).

Photos go through --align (default mtcnn: detect and align each face). No
verdict without a face: a probe with no face found answers "no_face" (exit status
3 when any probe does); enrollment takes each person's first k photos with a
face and lists the photos it passed over.
"""
import json
import os
import sys

from absl import flags

from siamese_graph import common_flags, fileio
from siamese_graph.errors import DataError, UserError
from siamese_graph.inference import galleries

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "threshold", "align",
                     "min_face_probability")
flags.DEFINE_string("enroll", None, "Folder-per-person photos to enroll.")
flags.DEFINE_integer("k", 5, "Photos enrolled per person (fewer if a person has fewer).")
flags.DEFINE_string("gallery", None, "Gallery file (.npz) to write with --enroll or to read.")
FLAGS = flags.FLAGS
NO_FACE_EXIT = 3


def main(argv):
    probes = argv[1:]
    if not FLAGS.gallery:
        raise UserError("--gallery is required")
    if FLAGS.enroll:
        if FLAGS.k < 1:
            raise UserError("--k=%d: must be at least 1" % FLAGS.k)
        fileio.check_writable_file(FLAGS.gallery, "gallery")
    elif not probes:
        raise UserError("give probe photos to identify (or --enroll=DIR to build a gallery)")
    for p in probes:
        if not os.path.isfile(p):
            raise DataError("%s: photo not found" % p)
    model = common_flags.restored_model()
    load = common_flags.photo_loader()
    if FLAGS.enroll:
        names, rows, feats, files, skipped = galleries.enroll(model, FLAGS.enroll, FLAGS.k, load, FLAGS.min_face_probability)
        galleries.save_gallery(FLAGS.gallery, model, names, rows, feats, files)
        print(json.dumps({"gallery": FLAGS.gallery, "people": len(names), "photos": len(files),
                          "no_face": skipped}))
        if not probes:
            return
    names, rows, feats = galleries.load_gallery(FLAGS.gallery, model)
    threshold = common_flags.threshold_for(model)
    probe_feats, probe_faces = model.embed([load(p) for p in probes], with_faces=True)
    answers = galleries.identify(model, names, rows, feats, probe_feats, threshold, probe_faces, FLAGS.min_face_probability)
    for p, (answer, nearest, dist) in zip(probes, answers):
        if answer == "no_face":
            print("%s\tno_face\tno face found: no answer" % p)
        else:
            print("%s\t%s\tnearest %s\tdistance %.4f" % (p, answer, nearest, dist))
    if any(a == "no_face" for a, _, _ in answers):
        sys.exit(NO_FACE_EXIT)


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
