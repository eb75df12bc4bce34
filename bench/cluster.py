"""Benchmark: one training process against parameter-server clusters on this machine.

Runs, one after another with the same flags (default: train.flags, its 48x48
convnet and 64 pairs a step) and the same records:
  single       python -m siamese_graph.train
  1ps+1w       bin/train_cluster 1            (the parameter-server round trip alone)
  1ps+2w       bin/train_cluster 2            (asynchronous updates)
  1ps+2w sync  bin/train_cluster 2 --sync_replicas   (an update averages 2 workers' gradients)
and prints global steps/s and pairs/s (pairs whose gradients reach the weights;
sync: 2 batches an update) from the chief's last progress line, which covers the
last --steps/2 steps (start-up excluded), plus the parameter-server cost a step:
(1ps+1w step time - single step time), in ms and as a share of the single step.

  python bench/cluster.py --records_dir=tfrecords/celeba-mini [--steps=300]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def last_rate(text):
    rates = re.findall(r"step \d+  loss [\d.]+  ([\d.]+) steps/s", text)
    if not rates:
        sys.exit("no progress line in the log:\n" + text[-3000:])
    return float(rates[-1])


def train_flags(records_dir, train_dir, steps):
    """train.flags for a timed run: steps steps, a progress line at half-way and the end,
    no validation, no checkpoint before the last."""
    return ["--flagfile=train.flags", "--records_dir=%s" % records_dir, "--train_dir=%s" % train_dir,
            "--max_steps=%d" % steps, "--log_every_n_steps=%d" % (steps // 2), "--validate_every_n_steps=0",
            "--save_checkpoint_steps=%d" % (10 * steps)]


def arguments():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records_dir", default=os.path.join(REPO, "tfrecords", "celeba-mini"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch_size", type=int, default=64, help="train.flags' pairs a step")
    return ap.parse_args()


def run(name, records_dir, steps, batch_size, workers, extra):
    train_dir = tempfile.mkdtemp(prefix="bench-cluster-")
    args = train_flags(records_dir, train_dir, steps) + ["--ps_grace_seconds=5", *extra]
    if workers:
        cmd = [sys.executable, os.path.join(REPO, "bin", "train_cluster"), str(workers)] + args
    else:
        cmd = [sys.executable, "-m", "siamese_graph.train"] + [a for a in args if "ps_grace" not in a]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    log = open(os.path.join(train_dir, "logs", "worker0.log")).read() if workers else r.stderr
    if r.returncode:
        sys.exit("%s failed:\n%s" % (name, (r.stdout + log)[-3000:]))
    return last_rate(log)


def main():
    args = arguments()
    rows = [("single", 0, [], 1), ("1ps+1w", 1, [], 1), ("1ps+2w async", 2, [], 1),
            ("1ps+2w sync", 2, ["--sync_replicas"], 2)]
    print("%-14s %12s %10s" % ("run", "steps/s", "pairs/s"))
    rates = {}
    for name, workers, extra, batches in rows:
        rates[name] = run(name, args.records_dir, args.steps, args.batch_size, workers, extra)
        print("%-14s %12.2f %10.0f" % (name, rates[name], rates[name] * args.batch_size * batches))
    single, ps = 1000 / rates["single"], 1000 / rates["1ps+1w"]
    print("parameter-server cost a step: %.1f ms (%.0f%% of a single-process step of %.1f ms)"
          % (ps - single, 100 * (ps - single) / single, single))


if __name__ == "__main__":
    main()
