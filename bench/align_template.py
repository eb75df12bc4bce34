r"""Measures the alignment template: where MTCNN finds the 5 points (and its box) on
CelebA's own aligned photos, in the 178x218 layout. Prints a table; --write saves
siamese_graph/align/template.json.

  python bench/align_template.py --data_dir=../shared/data/celeba-10k-lowres --num=1000 [--write]

Photos smaller than 178x218 (celeba-10k-lowres is 89x109) are upscaled bilinearly
to 178x218 before detection. Photos with no face, or several, are left out.
"""
import glob
import json
import os
import sys

import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from siamese_graph.faces import align

flags.DEFINE_string("data_dir", None, "A CelebA-layout folder of aligned photos (img_align_celeba/).")
flags.DEFINE_integer("num", 1000, "Photos measured (the first N by name).")
flags.DEFINE_bool("write", False, "Save the mean as siamese_graph/align/template.json.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    files = sorted(glob.glob(os.path.join(FLAGS.data_dir, "img_align_celeba", "*.jpg")))[:FLAGS.num]
    det = align.Detector(min_confidence=0.9, max_side=align.MAX_DETECT_SIDE)
    pts, boxes, none, several = [], [], 0, 0
    for f in files:
        im = Image.open(f).convert("RGB")
        if im.size != (align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT):
            im = im.resize((align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT), Image.BILINEAR)
        faces = det.detect(np.asarray(im))
        if not faces:
            none += 1
            continue
        if len(faces) > 1:
            several += 1
            continue
        pts.append(faces[0].points)
        boxes.append(faces[0].box)
    pts, boxes = np.array(pts), np.array(boxes)
    mean, std = pts.mean(0), pts.std(0)
    print("%-12s %8s %8s %6s %6s" % ("point", "x", "y", "sd x", "sd y"))
    for name, m, s in zip(align.POINT_NAMES, mean, std):
        print("%-12s %8.2f %8.2f %6.2f %6.2f" % (name, m[0], m[1], s[0], s[1]))
    print("%-12s %s" % ("face box", " ".join("%.2f" % v for v in boxes.mean(0))))
    print("photos %d  measured %d  no face %d  several faces %d" % (len(files), len(pts), none, several))
    if FLAGS.write:
        out = {"points": [[round(float(x), 2), round(float(y), 2)] for x, y in mean],
               "point_names": list(align.POINT_NAMES),
               "face_box": [round(float(v), 2) for v in boxes.mean(0)],
               "layout": "CelebA aligned, %dx%d" % (align.ALIGNED_WIDTH, align.ALIGNED_HEIGHT),
               "measured": {"command": "python bench/align_template.py --data_dir=%s --num=%d --write"
                                       % (FLAGS.data_dir, FLAGS.num),
                            "detector": "mtcnn %s, min_confidence 0.9" % _mtcnn_version(),
                            "photos": len(files), "used": len(pts), "no_face": none, "several_faces": several,
                            "point_sd": [[round(float(x), 2), round(float(y), 2)] for x, y in std]}}
        with open(align.TEMPLATE_FILE, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print("wrote %s" % align.TEMPLATE_FILE)


def _mtcnn_version():
    from importlib.metadata import version
    return version("mtcnn")


if __name__ == "__main__":
    app.run(main)
