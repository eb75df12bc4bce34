"""photos: reading one photo (errors named), modes to RGB, degrading as another source would."""
import numpy as np
import pytest
from PIL import Image

from siamese_graph.data import photos


def test_read_names_what_is_wrong(tmp_path):
    with pytest.raises(photos.PhotoError, match="not found"):
        photos.read(str(tmp_path / "missing.jpg"))
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(photos.PhotoError, match="not an image"):
        photos.read(str(tmp_path / "text.jpg"))
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    with pytest.raises(photos.PhotoError, match="corrupt"):
        photos.read(str(tmp_path / "cut.jpg"))
    raw, im, size = photos.read(str(tmp_path / "ok.jpg"))
    assert raw == data and size == (40, 30) and photos.is_rgb_jpeg(im)


def test_to_rgb_keeps_sixteen_bit_range_and_refuses_float():
    im = Image.new("I;16", (4, 4))
    im.putdata([65535] * 16)
    rgb = photos.to_rgb(im)
    assert rgb.shape == (4, 4, 3) and (rgb == 255).all()
    with pytest.raises(photos.PhotoError, match="floating-point"):
        photos.to_rgb(Image.new("F", (4, 4)))


def test_degrade_grayscale_and_downscale():
    rgb = np.random.RandomState(0).randint(0, 256, (32, 24, 3)).astype(np.uint8)
    gray = photos.degrade(rgb, photos.parse_degrade("grayscale"))
    assert gray.shape == rgb.shape and (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    small = photos.degrade(rgb, photos.parse_degrade("downscale:4"))
    assert small.shape == rgb.shape and np.abs(small.astype(int) - rgb).mean() > 5  # detail is gone
    with pytest.raises(ValueError):
        photos.parse_degrade("downscale:1")
