"""Benchmark: train fed by a local tf.data service against the in-process pair pipeline.

Runs train.flags (48x48 convnet, 64 pairs a step) for --steps steps three ways,
one after another on the same records: the in-process input pipeline, and
bin/train_data_service with 1 and 2 local workers (dispatcher and workers on
127.0.0.1, all on this machine's cores). Prints global steps/s and pairs/s from
the last progress line (the last --steps/2 steps). On one 2-core machine the
service cannot be faster: the pair graph competes with the training step for
the same cores, and batches cross a local gRPC connection; the table shows what
that costs. The service pays off when its workers are other machines.

  python bench/data_service.py --records_dir=tfrecords/celeba-mini [--steps=300]
"""
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.cluster import arguments, last_rate, train_flags  # noqa: E402


def main():
    args = arguments()
    print("%-22s %10s %10s" % ("input", "steps/s", "pairs/s"))
    for name, workers in (("in-process", 0), ("tf.data service, 1 w", 1), ("tf.data service, 2 w", 2)):
        train_dir = tempfile.mkdtemp(prefix="bench-service-")
        flags = train_flags(args.records_dir, train_dir, args.steps)
        cmd = ([sys.executable, os.path.join(REPO, "bin", "train_data_service"), str(workers)] if workers
               else [sys.executable, "-m", "siamese_graph.train"]) + flags
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if r.returncode:
            sys.exit("%s failed:\n%s" % (name, (r.stdout + r.stderr)[-3000:]))
        rate = last_rate(r.stdout + r.stderr)
        print("%-22s %10.2f %10.0f" % (name, rate, rate * args.batch_size))


if __name__ == "__main__":
    main()
