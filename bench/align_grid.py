r"""Draws what siamese-align made: for photos of an aligned folder, the in-the-wild
photo (the kept face's box and 5 points drawn on it) beside the aligned face.

  python bench/align_grid.py --aligned_dir=aligned/celeba-mini-wild --rows=8 --output=aligned_grid.png
"""
import json
import os
import sys

from absl import app, flags
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from siamese_graph.faces import align_folder  # noqa: E402 (after the path insert)

flags.DEFINE_string("aligned_dir", None, "An output folder of siamese-align.")
flags.DEFINE_integer("rows", 8, "Rows of the grid (4 photo/face pairs a row).")
flags.DEFINE_integer("every", 7, "Take every k-th aligned photo (several-face photos first).")
flags.DEFINE_string("output", "aligned_grid.png", "PNG to write.")
FLAGS = flags.FLAGS
H = 218


def main(argv):
    del argv
    with open(os.path.join(FLAGS.aligned_dir, align_folder.MANIFEST)) as f:
        m = json.load(f)
    src = os.path.join(m["source"]["data_dir"], "img_celeba" if m["layout"] == "celeba" else "")
    entries = [e for e in m["photos"] if e["status"] == "aligned"]
    several = [e for e in entries if e["faces"] > 1]
    picked = (several[:FLAGS.rows] + entries[::FLAGS.every])[:FLAGS.rows * 4]
    cell_w = 2 * 178 + 10
    grid = Image.new("RGB", (4 * cell_w, FLAGS.rows * H), "white")
    for k, e in enumerate(picked):
        im = Image.open(os.path.join(src, e["photo"])).convert("RGB")
        d = ImageDraw.Draw(im)
        w = max(2, im.width // 150)
        d.rectangle(e["box"], outline=(255, 0, 0), width=w)
        for x, y in e["points"].values():
            d.ellipse([x - 2 * w, y - 2 * w, x + 2 * w, y + 2 * w], fill=(0, 255, 0))
        im.thumbnail((178, H))
        out = Image.open(os.path.join(FLAGS.aligned_dir, e["output"]))
        x0, y0 = (k % 4) * cell_w, (k // 4) * H
        grid.paste(im, (x0 + (178 - im.width) // 2, y0 + (H - im.height) // 2))
        grid.paste(out, (x0 + 178, y0))
    grid.save(FLAGS.output)
    print("wrote %s (%d photos; left: the photo with the kept face's box and points, right: aligned)"
          % (FLAGS.output, len(picked)))


if __name__ == "__main__":
    app.run(main)
