r"""Pulls pairs from the training input graph and reports what the network would be fed.

  python -m siamese_graph.inspect_pairs --records_dir=tfrecords/celeba-mini --split=train \
      --num_pairs=10000 --save_grid=pairs.png
  python -m siamese_graph.inspect_pairs --flagfile=train.flags --save_grid=pairs.png   # the default run's pairs

It builds the input exactly as train does (graphs.build_inputs, from train's own
flags: several records folders, augmentation, the cache), so a run's flag file
shows that run's pairs.

Prints JSON: same_fraction, records_read_per_pair (every record read from disk,
shuffle-buffer fills included), identities seen in same and in different pairs,
mislabeled and same-photo pairs (both must be 0), pairs per second.
"""
import json
import time

import numpy as np
import tensorflow as tf
from absl import flags

from siamese_graph import common_flags, fileio, train_flags
from siamese_graph.data import pairs
from siamese_graph.errors import UserError
from siamese_graph.training import graphs, loop

common_flags.declare("records_dir", "split", "num_pairs", "batch_size", "image_size", "crop", "augment",
                     "rotation_deg", "seed", "shuffle_buffer", "cache")
flags.DEFINE_string("save_grid", None, "Write a PNG of sample pairs with their labels here.")
flags.DEFINE_integer("grid_pairs", 16, "Pairs in the --save_grid picture.")
FLAGS = flags.FLAGS
DEFAULT_SPLIT = "train"


def inspect(records_dir, split, num_pairs, config, grid_pairs=0):
    """What the training input feeds, pulled from the same graph train builds
    (graphs.input_dataset: several records folders alternate batch by batch).

    Args:
      records_dir: a records folder, or several, comma-separated.
      split: the split of each.
      num_pairs: pairs to pull.
      config: the TrainConfig of the run (batch_size, image_size, crop, augment, cache, ...).
      grid_pairs: pairs to keep as pictures.
    Returns:
      (report dict, first grid_pairs pairs as (image_a, image_b, label, filename_a, filename_b)).
    """
    splits = [pairs.pairable_split(d, split) for d in records_dir.split(",")]
    keys = ["label", "identity_a", "identity_b", "filename_a", "filename_b"]
    got, grid = {k: [] for k in keys}, []
    with tf.Graph().as_default():
        counter = tf.compat.v1.get_variable("records_read", [], tf.int64, trainable=False,
                                            initializer=tf.compat.v1.zeros_initializer(), use_resource=True)
        it = tf.compat.v1.data.make_initializable_iterator(graphs.input_dataset(splits, config, counter=counter))
        batch = it.get_next()
        with tf.compat.v1.Session() as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), it.initializer])
            start, n = time.time(), 0
            try:
                while n < num_pairs:
                    fetch = {k: batch[k] for k in keys}
                    if len(grid) < grid_pairs:
                        fetch.update(image_a=batch["image_a"], image_b=batch["image_b"])
                    out = sess.run(fetch)
                    for k in keys:
                        got[k].append(out[k])
                    for i in range(min(grid_pairs - len(grid), len(out["label"])) if "image_a" in out else 0):
                        grid.append((out["image_a"][i], out["image_b"][i], int(out["label"][i]),
                                     out["filename_a"][i].decode(), out["filename_b"][i].decode()))
                    n += len(out["label"])
            except tf.errors.InvalidArgumentError as e:
                if (message := pairs.disagreement(e)):
                    raise UserError(message)
                raise
            except tf.errors.DataLossError as e:
                path = next((p for p in (s.find_corrupt_shard() for s in splits) if p), None)
                raise UserError("%s: corrupt shard (%s); rewrite it with make_records --overwrite"
                                % (path or records_dir, e.message.splitlines()[0][:120]))
            elapsed = time.time() - start
            reads = int(sess.run(counter))
    got = {k: np.concatenate(v) for k, v in got.items()}
    label, ia, ib = got["label"], got["identity_a"], got["identity_b"]
    same = label == 0
    report = {
        "split": split,
        "records_dirs": [s.records_dir for s in splits],
        "pairs": int(len(label)),
        "same_fraction": float(same.mean()),
        "records_read": reads,
        "records_read_per_pair": reads / len(label),
        "mislabeled_pairs": int(((ia != ib).astype(np.int32) != label).sum()),
        "same_photo_pairs": int((got["filename_a"] == got["filename_b"]).sum()),
        "split_identities": sum(s.identities for s in splits),
        "split_identities_with_2_photos": sum(s.multi for s in splits),
        "identities_in_same_pairs": int(len(np.unique(ia[same]))),
        "identities_in_different_pairs": int(len(np.unique(np.concatenate([ia[~same], ib[~same]])))),
        "pairs_per_second": len(label) / elapsed,
        "augment": {k: getattr(config, k) for k in ("augment", "gray_prob", "lowres_prob", "border_prob", "rotation_deg",
                                                         "cache")},
    }
    return report, grid


def save_grid(path, grid, columns=4):
    """A picture of pairs: each cell is image_a | image_b over its label."""
    from PIL import Image, ImageDraw

    def to_uint8(x):
        x = (x - x.min()) / max(float(np.ptp(x)), 1e-6)
        return Image.fromarray((x * 255).astype(np.uint8))

    size = grid[0][0].shape[0]
    cell_w, cell_h = 2 * size + 8, size + 16
    rows = (len(grid) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (a, b, label, _, _) in enumerate(grid):
        x, y = (k % columns) * cell_w, (k // columns) * cell_h
        sheet.paste(to_uint8(a), (x, y))
        sheet.paste(to_uint8(b), (x + size, y))
        draw.text((x + 2, y + size + 2), "%d %s" % (label, "same" if label == 0 else "different"),
                  fill=(0, 110, 0) if label == 0 else (170, 0, 0))
    with fileio.atomic_write(path, "wb") as f:
        sheet.save(f, format="PNG")


def main(argv):
    del argv
    if not FLAGS.records_dir:
        raise UserError("--records_dir is required")
    if FLAGS.num_pairs < 1:
        raise UserError("--num_pairs=%d: must be at least 1" % FLAGS.num_pairs)
    # the default run's TrainConfig (train's own flags: --flagfile=train.flags works),
    # refused by the same checks train makes
    config = train_flags.config_from_flags()
    config.check()
    config.check_memory(loop.machine_memory())
    if FLAGS.save_grid:
        fileio.check_writable_file(FLAGS.save_grid, "save_grid")
    report, grid = inspect(FLAGS.records_dir, FLAGS.split or DEFAULT_SPLIT, FLAGS.num_pairs, config,
                           FLAGS.grid_pairs if FLAGS.save_grid else 0)
    if FLAGS.save_grid:
        save_grid(FLAGS.save_grid, grid)
        report["grid"] = FLAGS.save_grid
    print(json.dumps(report, indent=1))


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
