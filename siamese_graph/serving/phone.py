"""The phone's preprocessing, in numpy: what a TFLite client does to a face before the model.
"""
import numpy as np

from siamese_graph.data import preprocessing


def phone_face(rgb, crop, image_size):
    """The reference of the preprocessing a phone app applies before the TFLite model.

    Args:
      rgb: uint8 [H, W, 3] decoded photo (RGB; a grayscale photo repeated in 3 channels).
      crop: (top, left, height, width) fractions of the photo (preprocessing.parse_crop), or
        the crop object of the export's tflite/preprocessing.json.
      image_size: S, the model's input side (model.json's image_size).
    Returns:
      float32 [S, S, 3] in [0, 1]: the crop box sampled bilinearly on an S x S grid
      whose corners are the box's corners (pixel centres at (top * (H - 1), left *
      (W - 1)) and ((top + height) * (H - 1), (left + width) * (W - 1)); samples
      outside the photo are 0), divided by 255. This is tf.image.crop_and_resize's
      rule, written in numpy so that it can be ported line by line.
    """
    img = np.asarray(rgb, np.float32)
    h, w = img.shape[:2]
    y1, x1, y2, x2 = preprocessing.corners(crop)  # the box, as training and serving compute it
    f32, i = np.float32, np.arange(image_size, dtype=np.float32)
    if image_size > 1:  # in float32, in crop_and_resize's order, so the samples match it bit for bit
        ys = f32(y1) * f32(h - 1) + i * ((f32(y2) - f32(y1)) * f32(h - 1) / f32(image_size - 1))
        xs = f32(x1) * f32(w - 1) + i * ((f32(x2) - f32(x1)) * f32(w - 1) / f32(image_size - 1))
    else:
        ys = np.array([f32(0.5) * (f32(y1) + f32(y2)) * f32(h - 1)], np.float32)
        xs = np.array([f32(0.5) * (f32(x1) + f32(x2)) * f32(w - 1)], np.float32)

    def axis(coords, n):
        lo = np.floor(coords).astype(int)
        hi = np.ceil(coords).astype(int)
        frac = (coords - lo).astype(np.float32)
        inside = (coords >= 0) & (coords <= n - 1)
        return np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1), frac, inside

    y0, y1, fy, iny = axis(ys, h)
    x0, x1, fx, inx = axis(xs, w)
    top = img[y0][:, x0] + (img[y0][:, x1] - img[y0][:, x0]) * fx[None, :, None]
    bottom = img[y1][:, x0] + (img[y1][:, x1] - img[y1][:, x0]) * fx[None, :, None]
    out = top + (bottom - top) * fy[:, None, None]
    out = out * (iny[:, None] & inx[None, :])[:, :, None]
    return (out / 255.0).astype(np.float32)
