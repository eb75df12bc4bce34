"""Benchmark: scoring throughput for a 6,000-pair list, as `score --pairs` runs it.

Draws a balanced 6,000-pair list over celeba-mini's test photos (520 photos, 28
identities), then times score.score(): load each distinct photo once, crop,
tower, head. Prints photos, pairs, seconds and pairs/s, with model loading
timed apart.

  python bench/score.py --checkpoint_dir=runs/convnet [--data=../shared/data/celeba-mini]
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint_dir", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data", "celeba-mini"))
    ap.add_argument("--pairs", type=int, default=6000)
    args = ap.parse_args()
    import tensorflow as tf

    from siamese_graph import score
    from siamese_graph.data import pair_lists
    from siamese_graph.inference import models

    tf.compat.v1.disable_eager_execution()
    ident = dict(l.split() for l in open(os.path.join(args.data, "identity_CelebA.txt")))
    part = dict(l.split() for l in open(os.path.join(args.data, "list_eval_partition.txt")))
    names = sorted(n for n, p in part.items() if p == "2")
    pairs = pair_lists.balanced_from_identities(names, [ident[n] for n in names], args.pairs, seed=0)
    images = os.path.join(args.data, "img_align_celeba")
    pairs = [(os.path.join(images, a), os.path.join(images, b)) for a, b, _, _ in pairs]
    start = time.time()
    model = models.Model(args.checkpoint_dir)
    load = time.time() - start
    start = time.time()
    rows = score.score(model, pairs, model.threshold())
    elapsed = time.time() - start
    distinct = len({p for pair in pairs for p in pair})
    print("%-8s %8s %9s %9s %12s %14s" % ("pairs", "photos", "seconds", "pairs/s", "photos/s", "model load s"))
    print("%-8d %8d %9.2f %9.0f %12.0f %14.2f" % (len(rows), distinct, elapsed, len(rows) / elapsed,
                                                   distinct / elapsed, load))


if __name__ == "__main__":
    main()
