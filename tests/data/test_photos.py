"""photos: reading one photo (errors named), modes to RGB, degrading as another source would."""
import io

import numpy as np
import pytest
from PIL import Image

from siamese_graph.data import photos
from tests.conftest import face


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


def test_a_photo_is_read_as_a_viewer_shows_it_exif_orientation(tmp_path):
    """A camera's JPEG stored sideways with EXIF Orientation=6 (turn 90 degrees clockwise
    to show): read upright, in every path (photos.read, the commands' loader, records)."""
    from siamese_graph.data import record_writer

    upright = np.zeros((60, 40, 3), np.uint8)
    upright[:20] = (250, 20, 20)  # a red band at the top of the upright picture
    stored = np.rot90(upright, 1)  # what the camera wrote: turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[photos.EXIF_ORIENTATION] = 6
    path = str(tmp_path / "phone.jpg")
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif.tobytes())
    _, im, size = photos.read(path)
    assert size == (40, 60) and im.size == (40, 60)
    got = photos.load_photo(path)
    assert isinstance(got, np.ndarray) and got.shape == (60, 40, 3)  # not the sideways JPEG bytes
    assert got[:20, :, 0].mean() > 200 and got[40:, :, 0].mean() < 60  # the red band on top
    data, height, width = record_writer.load_photo(path)
    assert (height, width) == (60, 40)
    assert np.asarray(Image.open(io.BytesIO(data))).shape == (60, 40, 3)  # re-encoded upright


def test_transparent_pixels_show_white():
    """A PNG whose alpha is 0 everywhere shows as a blank page: white, whatever its
    colour channels hold (before: the hidden colours, a face even)."""
    rgb = np.asarray(face(2, 1, size=(40, 48)))
    hidden = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert (photos.to_rgb(Image.fromarray(hidden, "RGBA")) == 255).all()
    half = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    want = np.round(rgb * (128 / 255) + 255 * (1 - 128 / 255))
    assert np.abs(photos.to_rgb(Image.fromarray(half, "RGBA")).astype(int) - want).max() <= 1
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert np.array_equal(photos.to_rgb(Image.fromarray(opaque, "RGBA")), rgb)
