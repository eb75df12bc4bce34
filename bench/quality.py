r"""The quality row of a trained model, as docs/results.md reports it: celeba-mini's
test partition (AUC / 10-fold accuracy, and AUC in grayscale and at quarter
resolution with their gaps), five-celebrities (AUC / 10-fold) and, where it has
been aligned, celeba-mini-wild (AUC / 10-fold). Each is one `evaluate` command.

  python bench/quality.py --train_dirs=runs/convnet,runs/long [--wild_records=tfrecords/celeba-mini-wild-aligned]

Records first: tfrecords/celeba-mini (bin/train_celeba writes it) and
tfrecords/five-celebrities (make_records --dataset=folder
--data_dir=../shared/data/five-celebrities).
"""
import json
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_string("train_dirs", None, "Comma-separated train_dirs.")
flags.DEFINE_string("mini_records", "tfrecords/celeba-mini", "celeba-mini's records.")
flags.DEFINE_string("five_records", "tfrecords/five-celebrities", "five-celebrities' records.")
flags.DEFINE_string("wild_records", "", "Records of siamese-align's celeba-mini-wild (empty: left out).")
FLAGS = flags.FLAGS


def evaluate(train_dir, *args):
    out = subprocess.run([sys.executable, "-m", "siamese_graph.evaluate", "--checkpoint_dir=%s" % train_dir,
                          "--output_dir=%s" % os.path.join(train_dir, "bench-quality"), *args],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit("evaluate %s failed: %s" % (" ".join(args), out.stderr.strip().splitlines()[-1]))
    r = json.loads(out.stdout)
    return r["auc"], r["kfold_accuracy_mean"]


def main(argv):
    del argv
    head = "%-28s %15s %17s %17s %15s %15s" % ("train_dir", "mini AUC/10f", "gray AUC (gap)", "down4 AUC (gap)",
                                             "five AUC/10f", "wild AUC/10f")
    print(head)
    for d in FLAGS.train_dirs.split(","):
        mini = evaluate(d, "--records_dir=%s" % FLAGS.mini_records, "--split=test", "--num_pairs=6000")
        gray = evaluate(d, "--records_dir=%s" % FLAGS.mini_records, "--split=test", "--num_pairs=6000",
                        "--degrade=grayscale")
        down = evaluate(d, "--records_dir=%s" % FLAGS.mini_records, "--split=test", "--num_pairs=6000",
                        "--degrade=downscale:4")
        five = evaluate(d, "--records_dir=%s" % FLAGS.five_records, "--split=train", "--num_pairs=2000",
                        "--crop=none")
        wild = (evaluate(d, "--records_dir=%s" % FLAGS.wild_records, "--split=test", "--num_pairs=6000")
                if FLAGS.wild_records else (float("nan"), float("nan")))
        print("%-28s %7.4f / %.3f %8.4f (%+.3f) %8.4f (%+.3f) %7.4f / %.3f %7.4f / %.3f" % (
            d[-28:], mini[0], mini[1], gray[0], gray[0] - mini[0], down[0], down[0] - mini[0], five[0], five[1],
            wild[0], wild[1]), flush=True)


if __name__ == "__main__":
    app.run(main)
