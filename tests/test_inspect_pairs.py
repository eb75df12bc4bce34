"""siamese-inspect-pairs: the pairs train makes, as JSON and a picture grid, from train.flags."""
import json

import numpy as np
import pytest

from tests.conftest import cli


def test_inspect_pairs_cli_json_and_grid(synthetic_records, tmp_path):
    grid = tmp_path / "pairs.png"
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % synthetic_records[0],
                "--num_pairs=200", "--batch_size=20", "--augment", "--save_grid=%s" % grid)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["pairs"] == 200 and report["same_fraction"] == 0.5
    from PIL import Image
    im = Image.open(grid)
    assert im.size == (4 * (2 * 64 + 8), 4 * (64 + 16))
    assert np.asarray(im).std() > 10  # faces drawn, not a blank sheet


@pytest.mark.parametrize("size,needle", [("0", "must be in 1..512"), ("-5", "must be in 1..512"),
                                         ("100000", "must be in 1..512")])
def test_inspect_pairs_refuses_the_sizes_train_refuses(synthetic_records, size, needle):
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % synthetic_records[0], "--image_size=" + size)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "--image_size=%s: %s" % (size, needle) in r.stderr.strip().splitlines()[-1]


def test_inspect_pairs_shows_the_default_runs_pairs(synthetic_records, tmp_path):
    """`inspect_pairs --flagfile=train.flags` reads train's own flag file and pulls
    from the graph train builds: two records folders alternating, the cache, and the
    grayscale augmentation (train.flags: --gray_prob=0.4) visible in the pictures."""
    import json as json_

    from PIL import Image

    rec = synthetic_records[0]
    grid = tmp_path / "pairs.png"
    r = cli("siamese_graph.inspect_pairs", "--flagfile=train.flags", "--records_dir=%s,%s" % (rec, rec),
            "--image_size=16", "--batch_size=8", "--num_pairs=64", "--save_grid=%s" % grid, "--grid_pairs=16")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json_.loads(r.stdout)
    assert report["records_dirs"] == [rec, rec] and report["pairs"] == 64
    assert report["augment"] == {"augment": True, "gray_prob": 0.4, "lowres_prob": 0.2, "border_prob": 0.3,
                                 "rotation_deg": 0.0, "cache": True}
    assert report["mislabeled_pairs"] == 0 and report["same_fraction"] == 0.5
    cells = np.asarray(Image.open(grid).convert("RGB")).astype(int)
    # each cell: image_a | image_b (16 px each) over a 16 px caption, 8 px apart; synthetic photos are colour
    gray = [np.abs(img[..., 0] - img[..., 1]).max() <= 2 and np.abs(img[..., 1] - img[..., 2]).max() <= 2
            for k in range(16) for img in (cells[(k // 4) * 32:(k // 4) * 32 + 16,
                                                 (k % 4) * 40 + o:(k % 4) * 40 + o + 16] for o in (0, 16))]
    assert 0 < sum(gray) < len(gray), sum(gray)  # some made gray, as in training; not all
