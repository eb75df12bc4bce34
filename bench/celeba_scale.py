"""A CelebA-scale record set for pairing benchmarks: tiny generated photos whose
identities follow CelebA's real identity file (202,599 rows, 10,177 identities).

The photos are written to a temporary CelebA-layout folder and converted by
make_records itself, so the records and manifest are exactly what a user gets.

  python bench/celeba_scale.py OUT_DIR      (builds OUT_DIR/records)
"""
import io
import os
import sys

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
ANNOTATIONS = os.path.join(os.path.dirname(REPO), "shared", "data", "celeba-annotations")


def build(out_dir, annotations=ANNOTATIONS, size=8, num_workers=2):
    """Writes OUT_DIR/celeba (photos) and OUT_DIR/records; returns the records folder."""
    from siamese_graph.data import record_writer
    from siamese_graph.data.datasets import celeba

    src = os.path.join(out_dir, "celeba")
    images = os.path.join(src, "img_align_celeba")
    os.makedirs(images, exist_ok=True)
    rows = [line.split() for line in open(os.path.join(annotations, "identity_CelebA.txt"))]
    jpegs = {}
    for name, identity in rows:
        if identity not in jpegs:  # one tiny colour patch per identity
            rng = np.random.RandomState(int(identity))
            buf = io.BytesIO()
            Image.fromarray(rng.randint(0, 255, (size, size, 3)).astype(np.uint8)).save(buf, "JPEG")
            jpegs[identity] = buf.getvalue()
        with open(os.path.join(images, name), "wb") as f:
            f.write(jpegs[identity])
    with open(os.path.join(src, "identity_CelebA.txt"), "w") as f:
        f.writelines("%s %s\n" % (n, i) for n, i in rows)
    with open(os.path.join(src, "list_eval_partition.txt"), "w") as f:
        f.writelines("%s 0\n" % n for n, _ in rows)  # one split holding all 10,177 identities
    records_dir = os.path.join(out_dir, "records")
    record_writer.convert(celeba.read(src), records_dir, num_shards=16, num_workers=num_workers)
    return records_dir


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):  # a flag is not a folder: 200,000 photos went into --helpshort/
        sys.exit("usage: python bench/celeba_scale.py OUT_DIR   (writes about 200,000 small photos there)")
    print(build(sys.argv[1]))
