r"""Converts a face dataset into sharded TFRecords with a manifest.

  python -m siamese_graph.make_records --dataset=celeba --data_dir=PATH/celeba
  python -m siamese_graph.make_records --dataset=folder --data_dir=PATH/lfw --test_fraction=0.1

Output in --output_dir (default tfrecords/<basename of data_dir>):
  <split>-NNNNN-of-MMMMM.tfrecord   TF-Slim naming; schema in siamese_graph/records.py
  manifest.json                     counts, shards with record counts and sha256, skips
  labels.txt                        "<index>:<identity name>" (TF-Slim's label file)

Record order (what the pair pipeline relies on): within a split, every identity's
photos are contiguous and in one shard; identities are spread over the shards in
a seeded order so shards hold about the same number of photos. The manifest lists
each shard's identity blocks in order: [[identity index, photo count], ...].

Shards are written under a hidden temporary name and renamed when complete; a
rerun with the same inputs and flags keeps complete shards and redoes the rest;
the same inputs and flags give byte-identical shards.
"""

import os

from absl import flags, logging

from siamese_graph import common_flags, fileio
from siamese_graph.data import record_writer, records
from siamese_graph.data.datasets import celeba, folder
from siamese_graph.data.record_writer import (
    convert,
    fingerprint,
    plan_shards,
    run_config,
    verify,
)
from siamese_graph.errors import DataError, UserError
from siamese_graph.faces import align_folder

FLAGS = flags.FLAGS

common_flags.declare("output_dir", "seed", "overwrite", "dataset", "data_dir", "num_workers", "allow_missing",
                     "val_fraction", "test_fraction", "jpeg_quality", "runner", "beam_options")
flags.DEFINE_integer("num_shards", 16, "Shards per split at most (fewer if the split has fewer identities).")
flags.DEFINE_bool("strict", False, "Fail on any skipped photo instead of recording the skip.")
flags.DEFINE_bool("verify", False, "Read every shard back: counts, checksums, identities, decoding.")
flags.DEFINE_bool("align_faces", False, "Detect and align every photo first (siamese-align's code: MTCNN, the "
                  "178x218 template) into OUTPUT_DIR/aligned/, then write records of the aligned faces; for "
                  "in-the-wild photos (CelebA's img_celeba/, a phone's photos). Photos without a face are "
                  "skipped and listed in OUTPUT_DIR/aligned/align_manifest.json.")


def _summary(manifest):
    lines = ["%-6s %8s %10s %7s" % ("split", "photos", "identities", "shards")]
    for split, s in manifest["splits"].items():
        lines.append("%-6s %8d %10d %7d" % (split, s["photos"], s["identities"], len(s["shards"])))
    lines.append("skipped: %d  listed but missing: %d" % (len(manifest["skipped"]), manifest["listed_but_missing"]))
    return "\n".join(lines)


def align_first(data_dir, out_dir):
    """Aligns the source into OUT_DIR/aligned (the same code as siamese-align); returns that folder."""
    if fileio.is_url(out_dir):
        raise UserError("--align_faces writes the aligned photos beside the records: give a local --output_dir")
    listing = common_flags.source_listing(data_dir, "write records for")
    aligned = os.path.join(out_dir, record_writer.ALIGNED_DIR)
    manifest = align_folder.align_listing(listing, aligned, FLAGS.dataset, FLAGS.num_workers,
                                          jpeg_quality=FLAGS.jpeg_quality, overwrite=FLAGS.overwrite)
    logging.info("aligned %s into %s: %s", data_dir, aligned, manifest["counts"])
    return os.path.abspath(aligned)


def main(argv):
    del argv
    if not FLAGS.data_dir:
        raise UserError("--data_dir is required")
    if FLAGS.num_shards < 1 or FLAGS.num_workers < 1:
        raise UserError("--num_shards and --num_workers must be at least 1")
    if not 1 <= FLAGS.jpeg_quality <= 100:
        raise UserError("--jpeg_quality=%d: must be in 1..100" % FLAGS.jpeg_quality)
    if FLAGS.runner == "beam":
        from siamese_graph.data import beam_writer

        if not beam_writer.available():
            raise UserError("--runner=beam needs Apache Beam: pip install '.[beam]'")
    data_dir = os.path.abspath(FLAGS.data_dir)
    out_dir = FLAGS.output_dir or os.path.join("tfrecords", os.path.basename(data_dir.rstrip("/")))
    fileio.check_output_outside(data_dir, out_dir)
    listing = None if FLAGS.align_faces else read_listing(data_dir)  # bad input refused before any write
    with fileio.exclusive(out_dir, "make_records"):  # one writer of a records folder at a time
        if FLAGS.align_faces:
            listing = read_listing(align_first(data_dir, out_dir))
        write(listing, out_dir)


def read_listing(data_dir):
    """The source's Listing (CelebA or folder layout), its source fields filled in."""
    if FLAGS.dataset == "celeba":
        try:
            listing = celeba.read(data_dir, allow_missing=FLAGS.allow_missing)
        except celeba.MissingPhotos as e:
            raise UserError("%s; pass --allow_missing to write records for the photos present" % e)
    else:
        listing = folder.read(data_dir, FLAGS.val_fraction, FLAGS.test_fraction, FLAGS.seed)
    listing.source.update({"dataset": FLAGS.dataset, "data_dir": data_dir})
    return listing


def write(listing, out_dir):
    """Writes (or resumes) the records of a listing, verifies and prints the summary."""
    manifest_path = os.path.join(out_dir, records.MANIFEST)
    flags_used = {k: FLAGS[k].value for k in ("dataset", "num_shards", "seed", "jpeg_quality",
                                              "allow_missing", "val_fraction", "test_fraction")}
    if fileio.isfile(manifest_path) and not FLAGS.overwrite:
        manifest = records.RecordSet(out_dir).manifest
        config = run_config(FLAGS.num_shards, FLAGS.seed, FLAGS.jpeg_quality, listing.source)
        fp = fingerprint(plan_shards(listing, FLAGS.num_shards, FLAGS.seed), config)
        same = (manifest["fingerprint"] == fp if "fingerprint" in manifest  # older manifests lack it
                else manifest.get("flags") == flags_used and manifest.get("source") == listing.source)
        if not same:
            raise DataError("%s: records from other inputs or flags are here (the photos or flags "
                            "changed since they were written); pass --overwrite" % out_dir)
        logging.info("%s is complete already (pass --overwrite to rewrite)", out_dir)
    else:
        manifest = convert(listing, out_dir, FLAGS.num_shards, FLAGS.num_workers, FLAGS.seed,
                           FLAGS.overwrite, FLAGS.strict, FLAGS.jpeg_quality, flags_used, FLAGS.runner,
                           FLAGS.beam_options)
    if FLAGS.verify:
        n = verify(out_dir)
        logging.info("verified %d records: counts, checksums, identities and decoding", n)
    print(_summary(manifest))
    print("records in %s" % out_dir)


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
