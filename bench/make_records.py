"""Benchmark: make_records with 1 and 2 workers and with Apache Beam's DirectRunner
(in memory, and multi-process with 2 workers) against a plain single-process loop.

The plain loop is TF-Slim's download_and_convert way: read each file, get its
size, write one TFRecord, in one process. Each configuration runs in its own
subprocess, so peak memory (max RSS of the process and its workers) is its own.
The Beam rows need `pip install '.[beam]'` and are left out without it.

  python bench/make_records.py [--data=../shared/data/celeba-mini,../shared/data/celeba-10k-lowres]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")


def plain_loop(data_dir, out_dir):
    """One process, one TFRecord, no checks beyond what PIL needs for the size."""
    import tensorflow as tf
    from PIL import Image

    from siamese_graph.data import records
    from siamese_graph.data.datasets import celeba

    listing = celeba.read(data_dir)
    index = {n: i for i, n in enumerate(listing.identity_names)}
    with tf.io.TFRecordWriter(os.path.join(out_dir, "all.tfrecord")) as w:
        for p in listing.photos:
            data = tf.io.gfile.GFile(p.path, "rb").read()
            width, height = Image.open(p.path).size
            w.write(records.encode_example(data, height, width, p.relname, index[p.identity_name],
                                           p.identity_name))
    return len(listing.photos)


def one(kind, data_dir):
    from absl import logging

    from siamese_graph.data import record_writer
    from siamese_graph.data.datasets import celeba

    logging.set_verbosity(logging.WARNING)
    with tempfile.TemporaryDirectory() as out:
        start = time.time()
        if kind == "plain":
            n = plain_loop(data_dir, out)
        else:
            listing = celeba.read(data_dir)
            n = len(listing.photos)
            if kind.startswith("beam"):
                options = {"beam": "--runner=DirectRunner",
                           "beam2": "--runner=DirectRunner --direct_num_workers=2 "
                                    "--direct_running_mode=multi_processing"}[kind]
                record_writer.convert(listing, out, num_shards=16, runner="beam", beam_options=options)
            else:
                record_writer.convert(listing, out, num_workers=int(kind), num_shards=16)
        elapsed = time.time() - start
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"photos": n, "seconds": elapsed, "peak_mib": peak / 1024}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=",".join(os.path.join(SHARED, d) for d in ("celeba-mini", "celeba-10k-lowres")))
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(*args.one)
    rows = []
    for data_dir in args.data.split(","):
        from siamese_graph.data import beam_writer

        for kind in ("plain", "1", "2") + (("beam", "beam2") if beam_writer.available() else ()):
            r = subprocess.run([sys.executable, __file__, "--one", kind, data_dir], capture_output=True,
                               text=True, check=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append((os.path.basename(data_dir), kind, res))
    print("%-20s %-24s %8s %9s %10s %9s" % ("data", "writer", "photos", "seconds", "photos/s", "peak MiB"))
    for name, kind, res in rows:
        label = {"plain": "plain loop (TF-Slim)", "1": "make_records 1 worker",
                 "2": "make_records 2 workers", "beam": "Beam Direct, in memory",
                 "beam2": "Beam Direct, 2 processes"}[kind]
        print("%-20s %-24s %8d %9.2f %10.0f %9.0f" % (name, label, res["photos"], res["seconds"],
                                                      res["photos"] / res["seconds"], res["peak_mib"]))


if __name__ == "__main__":
    main()
