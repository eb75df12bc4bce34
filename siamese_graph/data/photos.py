"""Reading one photo file with Pillow: the checks and the conversion to 8-bit RGB
that make_records (storing) and inference (scoring) share.

Every Pillow mode is converted with its real range: 16-bit and 32-bit integer
grayscale (I;16*, I) are scaled from 0..65535 to 0..255 (Pillow's own
convert("RGB") clips them, turning most photos white); alpha is dropped, as
tf.io.decode_png(channels=3) does; palette, 1-bit, CMYK and YCbCr go through
Pillow's conversion. Floating-point pixels (mode F) have no defined range and
are refused by name.
"""
import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from siamese_graph.errors import DataError


class PhotoError(Exception):
    """Why a photo cannot be used (no path: the caller adds it)."""


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")

# EXIF's Orientation tag: a camera's photo stored sideways, shown upright by a viewer.
EXIF_ORIENTATION = 0x0112
# What a transparent pixel shows as (a viewer's page): white.
BACKGROUND = (255, 255, 255)


def read(path, draft_scale=1):
    """Opens and decodes a photo file.

    Args:
      path: the file.
      draft_scale: for RGB JPEGs, decode at 1/draft_scale (a faster check that
        still reads every byte); the image is then for checking only.
    Returns:
      (file bytes, decoded PIL image, (width, height) of the photo). A photo with an
      EXIF orientation comes turned as a viewer shows it (a new image, not a JPEG
      whose bytes could be used as they are).
    Raises:
      PhotoError: missing, unreadable, not an image, corrupt or truncated, or
        over Pillow's decompression-bomb limit.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise PhotoError("not found")
    except OSError as e:
        raise PhotoError("unreadable: %s" % e.strerror)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            size = im.size
            if draft_scale > 1 and is_rgb_jpeg(im):
                im.draft("RGB", (max(1, size[0] // draft_scale), max(1, size[1] // draft_scale)))
            im.load()  # truncated or corrupt data fails here
            if im.getexif().get(EXIF_ORIENTATION, 1) != 1:  # shown turned or mirrored: read it as shown
                if draft_scale > 1:
                    im = Image.open(io.BytesIO(data))
                    im.load()
                im = ImageOps.exif_transpose(im)  # a new image: its bytes no longer describe it
                size = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError("over Pillow's decompression-bomb limit of %d pixels" % Image.MAX_IMAGE_PIXELS)
    except Image.UnidentifiedImageError:
        raise PhotoError("not an image")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PhotoError("corrupt image: %s" % str(e).splitlines()[0][:100])
    return data, im, size


def is_rgb_jpeg(im):
    """True for an RGB JPEG: its bytes are stored and decoded as they are."""
    return im.format == "JPEG" and im.mode == "RGB"


def tf_decodable_jpeg(im):
    """True for a JPEG that tf.io.decode_jpeg(channels=3) decodes to the same RGB
    picture (RGB or grayscale): scoring and the exported SavedModel then decode it
    with the same code."""
    return im.format == "JPEG" and im.mode in ("RGB", "L")


def to_rgb(im):
    """A decoded PIL image of any mode -> uint8 [H, W, 3], as a viewer shows it:
    transparent pixels composited on white (BACKGROUND). Raises PhotoError for mode F."""
    if im.mode in _SIXTEEN_BIT:
        a = np.asarray(im).astype(np.float64)
        if a.min() < 0 or a.max() > 65535:
            raise PhotoError("32-bit integer pixels outside 0..65535 (mode %s): no defined range" % im.mode)
        gray = np.round(a / 257.0).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "F":
        raise PhotoError("floating-point pixels (mode F) have no defined range; save it as 8 or 16 bits")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, BACKGROUND + (255,)), rgba)
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError as e:
        raise PhotoError("mode %s cannot be converted to RGB (%s)" % (im.mode, e))


def parse_degrade(spec):
    """'grayscale', 'downscale:K' (K >= 2) or several joined by commas -> [(kind, K)].

    Raises ValueError with the reason."""
    out = []
    for part in (spec or "").split(","):
        kind, _, value = part.strip().partition(":")
        if kind == "grayscale" and not value:
            out.append(("grayscale", None))
        elif kind == "downscale" and value.isdigit() and int(value) >= 2:
            out.append(("downscale", int(value)))
        else:
            raise ValueError("expected grayscale, downscale:K with K >= 2, or both joined by a comma")
    return out


def degrade(rgb, steps):
    """A uint8 [H, W, 3] photo degraded as a camera or another source would:
    grayscale (ITU-R 601 luma, Pillow's convert("L"), in three equal channels) and/or
    downscale:K (bilinear to 1/K of each side, then back to the photo's size).

    Args:
      rgb: uint8 [H, W, 3].
      steps: parse_degrade's list, applied in order.
    Returns:
      uint8 [H, W, 3], the same size."""
    im = Image.fromarray(np.asarray(rgb, np.uint8), "RGB")
    for kind, k in steps:
        if kind == "grayscale":
            im = im.convert("L").convert("RGB")
        else:
            w, h = im.size
            im = im.resize((max(1, w // k), max(1, h // k)), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    return np.asarray(im)


def load_photo(path):
    """A photo for Model.embed: the file's bytes when it is an RGB or grayscale JPEG
    (decoded in the graph exactly as training decodes records, and as the exported
    SavedModel decodes it), else a uint8 [H, W, 3] array converted by
    to_rgb (any format, mode and bit depth Pillow reads).
    Raises DataError naming the file."""
    try:
        data, im, _ = read(path)
        return data if tf_decodable_jpeg(im) else to_rgb(im)
    except PhotoError as e:
        raise DataError("%s: unusable photo (%s)" % (path, e))
