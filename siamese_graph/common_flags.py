"""The flags that more than one command uses, each defined here once with one default.

A command declares the ones it uses with `common_flags.declare(...)`, which also
lists them in its --help. A flag used by one command only is defined in that
command's module. Where the natural default differs between commands, the
default here is None and each command's help says what None means there.
"""
import math
import sys

from absl import app, flags

from siamese_graph import api
from siamese_graph.data import preprocessing
from siamese_graph.data.datasets import celeba
from siamese_graph.errors import UserError, run_main
from siamese_graph.faces import align_folder, loader
from siamese_graph.inference import zoo
from siamese_graph.model import traindir

# Photo sources (make_records, align)
flags.DEFINE_enum("dataset", "celeba", ["celeba", "folder"], "Source layout: celeba (img_align_celeba/; the "
                  "aligner also reads in-the-wild img_celeba/) or folder (folder-per-person).")
flags.DEFINE_string("data_dir", None, "Source folder.")
flags.DEFINE_integer("num_workers", 2, "Worker processes (make_records: writers; align: detectors).")
flags.DEFINE_bool("allow_missing", False, "CelebA: use the photos present when some listed ones are missing.")
flags.DEFINE_float("val_fraction", 0.0, "Folder layout without split folders: share of identities for val.")
flags.DEFINE_float("test_fraction", 0.1, "Folder layout without split folders: share of identities for test.")
flags.DEFINE_enum("runner", "local", ["local", "beam"], "local: --num_workers processes on this machine; "
                  "beam: an Apache Beam pipeline (pip install '.[beam]'; see --beam_options).")
flags.DEFINE_string("beam_options", "--runner=DirectRunner", "With --runner=beam: Beam's pipeline options, "
                    "e.g. \"--runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing\" "
                    "or DataflowRunner's.")
flags.DEFINE_integer("jpeg_quality", 95, "Quality of JPEGs the command encodes (make_records: photos that are "
                     "not RGB JPEG; align: the aligned faces).")
# Records and pairs (make_records, inspect_pairs, train, evaluate)
flags.DEFINE_string("records_dir", None, "Folder written by make_records (train: several, comma-separated).")
flags.DEFINE_string("split", None, "Split of --records_dir; default: train for train and inspect_pairs, "
                    "test for evaluate.")
flags.DEFINE_integer("seed", 0, "Seed for shuffling, pairing, augmentation and (make_records) shard order.")
flags.DEFINE_integer("batch_size", 64, "Pairs per batch (even: half same, half different).")
flags.DEFINE_integer("num_pairs", 6000, "Pairs to draw (inspect_pairs: to pull from the pair graph; "
                     "evaluate: balanced pairs from --records_dir).")
flags.DEFINE_integer("image_size", 64, "Side of the square network input, in pixels.")
flags.DEFINE_string("crop", None, "Face box: celeba, tight, none, center:F or box:T,L,H,W (see preprocessing.py); "
                    "default: %s when pairing or training, the model's own when restoring one."
                    % preprocessing.DEFAULT_CROP)
flags.DEFINE_bool("augment", False, "Training augmentation: flip, crop/scale jitter, brightness, contrast.")
flags.DEFINE_float("rotation_deg", preprocessing.DEFAULT_ROTATION_DEG,
                   "With --augment: random rotation up to +-this many degrees (0: none; costs speed).")
flags.DEFINE_integer("shuffle_buffer", 2048, "Records in the record-level shuffle buffer.")
flags.DEFINE_bool("cache", False, "Decode each photo of the split once, keep its face region in memory and "
                  "make pairs from there (pairs.py: decoding once); --shuffle_buffer then does not apply.")
# Restoring a train_dir (evaluate, score, gallery, embed, export)
flags.DEFINE_string("checkpoint_dir", None, "A train_dir written by train; score, gallery, embed and evaluate also "
                    "take a SavedModel written by export (a version folder, or its output folder).")
flags.DEFINE_string("checkpoint_path", None, "The checkpoint of --checkpoint_dir to restore (model.ckpt-N, "
                    "or a path); default: the latest.")
flags.DEFINE_bool("flip_average", True,
                  "Average each photo's features with its mirror image's (two tower passes a photo).")
flags.DEFINE_float("threshold", None, "Distance at or below which a pair is the same person; "
                   "default: the one saved by evaluate --calibrate.")
# Photos in, faces out (score, evaluate, gallery, embed)
flags.DEFINE_enum("align", "mtcnn", ["mtcnn", "none"], "mtcnn: detect the face in each photo file and "
                  "align it to CelebA's 178x218 layout before the model's crop (no face: no verdict); "
                  "none: photo files are already framed like the training photos (aligned crops).")
flags.DEFINE_float("min_face_probability", 0.5, "A photo whose face box MTCNN's ONet scores below this gets "
                   "no verdict (face_gate.py); 0 turns the check off.")
# Photos and files
flags.DEFINE_string("pairs", None, "A pairs file: `path_a path_b label [fold]` lines (evaluate; or LFW's "
                    "pairs.txt with --pairs_format=lfw); score reads `path_a path_b` and ignores the rest.")
flags.DEFINE_string("image_root", "", "Folder the pairs file's relative photo paths are under. It does not "
                    "confine them: a pairs file is trusted input, and its paths (absolute, or with ..) are read "
                    "as written, as a shell reads them.")
flags.DEFINE_string("folder", None, "Folder-per-person photos: FOLDER/<person>/<photo>.")
flags.DEFINE_string("output_dir", None, "Output folder (make_records: default tfrecords/<name>; "
                    "evaluate: default CHECKPOINT_DIR/eval-<source>).")
flags.DEFINE_bool("overwrite", False, "Replace what this command wrote before: make_records deletes only "
                  "its own records, manifest and labels in --output_dir; export replaces the --version folder.")

# A threshold is a distance: every command that reads the flag refuses a useless one
# at parse time, before any work (score, gallery, export use it; evaluate and embed
# refuse it in their main, since they make no verdicts).
flags.register_validator("threshold", lambda v: v is None or (math.isfinite(v) and v > 0),
                         "must be a finite distance above 0 (distances are > 0)")

# Flags defined above belong to this module; declare() below marks them as key
# flags of the calling command (shown in its --help).
flags.disclaim_key_flags()

FLAGS = flags.FLAGS


def declare(*names):
    """Marks shared flags as used by the calling command module (listed in its --help)."""
    for name in names:
        flags.declare_key_flag(name)


def source_listing(data_dir, what):
    """The photos of --dataset in data_dir, read with the source flags (--allow_missing,
    --val_fraction, --test_fraction, --seed) by the reader siamese-align and
    make_records share; UserError when listed photos are missing. what: the command's
    work, for the hint ("align", "write records for")."""
    try:
        listing = align_folder.read_source(data_dir, FLAGS.dataset, FLAGS.allow_missing, FLAGS.val_fraction,
                                           FLAGS.test_fraction, FLAGS.seed)
    except celeba.MissingPhotos as e:
        raise UserError("%s; pass --allow_missing to %s the photos present" % (e, what))
    listing.source.update({"dataset": FLAGS.dataset, "data_dir": data_dir})
    return listing


def restored_model():
    """The model for --checkpoint_dir (a train_dir or an exported SavedModel), --crop
    and --flip_average (the restoring commands); without --checkpoint_dir, the packaged model (inference/zoo.py), said in
    one log line."""
    if not FLAGS.checkpoint_dir and zoo.DEFAULT not in zoo.names():
        raise UserError("--checkpoint_dir is required (this install has no packaged model)")
    try:
        flip = FLAGS.flip_average if FLAGS["flip_average"].present else None  # None: the model's
        return api.load_model(FLAGS.checkpoint_dir or None, FLAGS.crop, flip, FLAGS.checkpoint_path)
    except traindir.DamagedCheckpoint as e:
        hint = ("; restore an earlier one with --checkpoint_path=%s" % e.earlier[-1] if e.earlier
                else "; no earlier checkpoint is kept: train again")
        raise UserError(str(e) + hint)


def photo_loader():
    """loader.PhotoLoader for --align (the photo-taking commands)."""
    if not 0 <= FLAGS.min_face_probability <= 1:
        raise UserError("--min_face_probability=%g: must be in [0, 1]" % FLAGS.min_face_probability)
    return loader.PhotoLoader(FLAGS.align)


def refuse_threshold(command, why):
    """UserError when --threshold is given to a command that makes no verdicts (every
    float flag is global in absl: unrefused, it would be ignored in silence)."""
    if FLAGS["threshold"].present:
        raise UserError("--threshold=%g: %s takes no threshold (%s)" % (FLAGS.threshold, command, why))


def threshold_for(model):
    """--threshold when given (finite and above 0), else the model's calibrated
    threshold (or None)."""
    if FLAGS.threshold is not None:
        return traindir.check_threshold(FLAGS.threshold, "--threshold")
    return model.threshold()


def require_finite_floats():
    """Every float flag of the project's commands is refused at parse time, in absl's
    one line, when it is NaN or infinite (a flag's own range is its command's check)."""
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if module.startswith(("absl", "tensorflow")):
            continue
        for flag in module_flags:
            if flag.flag_type() == "float" and flag.name not in _FINITE:
                flags.register_validator(flag.name, lambda v: v is None or math.isfinite(v), "must be a finite number")
                _FINITE.add(flag.name)


_FINITE = set()


def parse(argv):
    """Parses a command line into FLAGS; returns the rest of argv. A bad flag (unknown,
    malformed, refused by a validator, a missing --flagfile) is one line on stderr,
    `error: ...`, and exit 1, like every other user mistake (absl's own parser prints
    `FATAL Flags parsing error` and a help hint)."""

    require_finite_floats()
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print("error: %s" % " ".join(str(e).split()), file=sys.stderr)
        sys.exit(1)


def run(main, module_name):
    """Runs a command's absl main with one-line errors (errors.run_main); flags are
    parsed by parse().

    Under a console script (siamese-train ...) sys.argv[0] is the script, not
    the command module, so the module's flags are registered for it too and
    --help lists them as it does for `python -m siamese_graph.X`."""
    if module_name != "__main__":
        for flag in FLAGS.get_key_flags_for_module(module_name):
            FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(run_main(main), flags_parser=parse)
