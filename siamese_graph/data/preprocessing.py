"""The one image preprocessing: training, evaluation and scoring all use it.

decode -> crop to the face region and resize to image_size (boxes, crop_resize:
per photo) -> (augment) -> standardize (finish: on a batch).
preprocess() is the two stages for one image; the pair pipeline runs stage 1 per
image and stage 2 per batch, the same code either way.

Crops are boxes in fractions of the photo (top, left, height, width), so they
hold for any resolution of the same framing:
  celeba      (0.229, 0.112, 0.633, 0.775): a square 138x138 face box in CelebA's
              178x218 aligned photos (rows 50-188, columns 20-158): eyebrows to
              chin, little background. The default.
  tight       (0.308, 0.209, 0.475, 0.581): the celeba box shrunk to 3/4 of its side
              about its centre (104x104 of the 178x218 layout: brows to chin,
              cheek to cheek): what train.flags trains on aligned faces with
              (docs/results.md, issue 37: it gains on every set over celeba).
  none        the whole photo.
  center:F    the central F of each side (e.g. center:0.6 for LFW's 250x250 photos).
  box:T,L,H,W any box, in fractions.

Augmentation (training only): random horizontal flip, crop/scale jitter, small
rotation (rotation_deg, 0 turns it off), brightness and contrast. All randomness is stateless and driven by a
per-image seed, so the same seed gives the same images in any process and under
parallel map.
"""
import math

import tensorflow as tf

from siamese_graph.errors import ArgumentError

CROPS = {"celeba": (50 / 218, 20 / 178, 138 / 218, 138 / 178),
         "tight": (67.25 / 218, 37.25 / 178, 103.5 / 218, 103.5 / 178),
         "none": (0.0, 0.0, 1.0, 1.0)}
DEFAULT_CROP = "celeba"

# Augmentation strengths: scale +-10%, shift +-6% of the box, brightness +-0.15
# (on [0, 1] pixels), contrast x[0.75, 1.25]. Rotation is the one costly
# augmentation (a bilinear warp per image; bench/pairs.py measures its cost), so
# it is off unless rotation_deg is set; 8 degrees is a good value.
SCALE_JITTER, SHIFT_JITTER, DEFAULT_ROTATION_DEG = 0.10, 0.06, 0.0
# A tight crop's border (finish's border_prob): each edge of the crop moves in by up
# to this fraction of its side, the rest black (five-celebrities' 150x150 crops,
# aligned, keep about the middle 60% of the model's celeba crop).
MAX_BORDER = 0.3
MAX_BRIGHTNESS, CONTRAST_RANGE = 0.15, (0.75, 1.25)


def parse_crop(spec):
    """'celeba' | 'tight' | 'none' | 'center:F' | 'box:T,L,H,W' -> (top, left, height, width) fractions."""
    if spec in CROPS:
        return CROPS[spec]
    try:
        kind, _, value = spec.partition(":")
        if kind == "center":
            f = float(value)
            box = ((1 - f) / 2, (1 - f) / 2, f, f)
        elif kind == "box":
            box = tuple(float(v) for v in value.split(","))
        else:
            raise ValueError
        t, l, h, w = box
        if not (0 <= t < 1 and 0 <= l < 1 and 0 < h and 0 < w and t + h <= 1 + 1e-6 and l + w <= 1 + 1e-6):
            raise ValueError
        return box
    except ValueError:
        raise ArgumentError("crop", spec, "expected celeba, tight, none, center:F with 0<F<=1, or "
                            "box:T,L,H,W in fractions inside the photo")


def decode(encoded):
    """Encoded JPEG (scalar string) -> uint8 [H, W, 3]. Records always hold RGB JPEG."""
    return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_FAST")


def corners(crop):
    """The crop box: (top, left, height, width) fractions, a crop object as the
    export's tflite/preprocessing.json stores it, or a crop name or spec (parse_crop)
    -> its corners (y1, x1, y2, x2) as fractions of the photo, the box
    tf.image.crop_and_resize takes. The one place a crop becomes a box: boxes()
    (training, inference, serving) and the phone's numpy reference use it."""
    if isinstance(crop, str):
        crop = parse_crop(crop)
    elif isinstance(crop, dict):
        crop = (crop["top"], crop["left"], crop["height"], crop["width"])
    t, l, h, w = [float(v) for v in crop]
    return t, l, t + h, l + w


def boxes(crop, n=1, seed=None, scale_jitter=SCALE_JITTER):
    """[n, 4] crop boxes (y1, x1, y2, x2 in fractions) for crop_resize.

    Without a seed, n copies of the crop. With a seed ([2] int tensor), n
    independent training jitters of it: scale (by a factor in 1 +- scale_jitter),
    position, and a random mirror (x1 > x2 makes crop_and_resize flip the crop,
    so flipping costs nothing).
    """
    t, l, h, w = [float(v) for v in crop]
    if seed is None:
        return tf.tile(tf.constant([corners(crop)], tf.float32), [n, 1])
    u = tf.random.stateless_uniform([4, n], tf.cast(seed, tf.int64), -1.0, 1.0)
    scale = 1.0 + scale_jitter * u[0]
    half_h, half_w = scale * h / 2, scale * w / 2 * tf.sign(u[3] + 1e-9)
    cy, cx = t + h / 2 + SHIFT_JITTER * h * u[1], l + w / 2 + SHIFT_JITTER * w * u[2]
    return tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=1)


def jitter_extent(crop, scale_jitter=SCALE_JITTER, clip=True):
    """The box (top, left, height, width fractions) that holds every jittered box of
    crop (boxes() with a seed: scale and shift at their largest), clipped to the
    photo unless clip is False (then it may reach past the photo's edges, where a
    crop is black). Mirroring does not change a box's extent, and rotation happens
    after the crop (finish)."""
    t, l, h, w = [float(v) for v in crop]
    grow = 1.0 + scale_jitter + 2 * SHIFT_JITTER  # +-(h/2 (1 + scale) + shift h) about the centre
    cy, cx = t + h / 2, l + w / 2
    top, left, bottom, right = cy - grow * h / 2, cx - grow * w / 2, cy + grow * h / 2, cx + grow * w / 2
    if clip:
        top, left, bottom, right = max(0.0, top), max(0.0, left), min(1.0, bottom), min(1.0, right)
    return top, left, bottom - top, right - left


def within(crop_boxes, outer):
    """crop_boxes ([n, 4] y1, x1, y2, x2 in fractions of the photo) in fractions of
    the box outer (top, left, height, width): for cropping from an image of outer alone
    (crop_resize_many, whose snapping to whole pixels also absorbs the rounding error
    of a box on outer's own edge)."""
    t, l, h, w = [float(v) for v in outer]
    return (crop_boxes - tf.constant([t, l, t, l], tf.float32)) / tf.constant([h, w, h, w], tf.float32)


def crop_resize(image, image_size, crop_boxes):
    """Stage 1, per photo: uint8 [H, W, 3] -> float32 [n, S, S, 3] in [0, 1], one per box."""
    n = tf.shape(crop_boxes)[0]
    out = tf.image.crop_and_resize(image[tf.newaxis], crop_boxes, tf.zeros([n], tf.int32),
                                   [image_size, image_size], extrapolation_value=0.0) / 255.0
    out.set_shape([None, image_size, image_size, 3])
    return out


def snap(crop_boxes, height, width):
    """crop_boxes ([n, 4] y1, x1, y2, x2 in fractions of an image of height x width
    pixels; x1 > x2 mirrors) with every corner moved to the nearest whole pixel
    (crop_and_resize's rule: fraction f is pixel f * (side - 1)), clipped to the image."""
    corners, scale = _pixel_corners(crop_boxes, height, width)
    return corners / tf.maximum(scale, 1.0)


def _pixel_corners(crop_boxes, height, width):
    scale = tf.constant([height - 1, width - 1, height - 1, width - 1], tf.float32)
    return tf.clip_by_value(tf.round(crop_boxes * scale), 0.0, scale), scale


def crop_resize_many(images, which, crop_boxes, image_size):
    """tf.image.crop_and_resize (bilinear) of a batch, with every box snapped to whole
    pixels (snap): then each crop is a slice of its image, mirrored or not, and one
    ResizeBilinear (align_corners: the same sampling as crop_and_resize) of it.

    Each slice is cast to float first (ResizeBilinear reads float faster than uint8)
    and mirrored as a 3-D [h, w, C] tensor reversed along its middle axis, which TF's
    CPU kernel does with one copy a pixel (a 4-D reverse goes element by element); a
    crop that is not mirrored goes through the same reverse as [h, 1, w * C], a copy
    a row. On one CPU thread the batch costs 1.8x (48 pixels) to 2.3x (96) less than
    one crop_and_resize of the batch (bench/crop.py).

    Args:
      images: uint8 [N, H, W, C] tensor, H, W and C static.
      which: int [B] tensor, the image each box crops; B static.
      crop_boxes: float32 [B, 4] (y1, x1, y2, x2) in fractions of an image, inside
        it; x1 > x2 mirrors the crop (as in boxes()).
      image_size: side of the square output.
    Returns:
      float32 [B, image_size, image_size, C] in [0, 255]: crop_and_resize of snap(crop_boxes).
    """
    _, height, width, channels = images.shape.as_list()
    n = crop_boxes.shape[0]
    if None in (height, width, channels, n):
        raise ValueError("crop_resize_many needs static image sides and a static number of boxes")
    corners = tf.cast(_pixel_corners(crop_boxes, height, width)[0], tf.int32)
    y1, x1, y2, x2 = tf.unstack(corners, axis=1)
    rows, cols, mirror = tf.abs(y2 - y1) + 1, tf.abs(x2 - x1) + 1, x1 > x2
    zeros, ones = tf.zeros_like(rows), tf.ones_like(rows)
    begins = tf.unstack(tf.stack([tf.cast(which, tf.int32), tf.minimum(y1, y2), tf.minimum(x1, x2), zeros], 1), n)
    sizes = tf.unstack(tf.stack([ones, rows, cols, ones * channels], 1), n)
    # reversed along axis 1: [rows, cols, C] mirrors, [rows, 1, cols * C] copies
    flat = tf.unstack(tf.stack([rows, tf.where(mirror, cols, 1), tf.where(mirror, channels, cols * channels)], 1), n)
    crops = [tf.raw_ops.ResizeBilinear(
        images=tf.reshape(tf.reverse(tf.reshape(tf.cast(tf.slice(images, b, s), tf.float32), f), [1]), s),
        size=[image_size, image_size], align_corners=True) for b, s, f in zip(begins, sizes, flat)]
    out = tf.concat(crops, axis=0)
    out.set_shape([n, image_size, image_size, channels])
    return out


def _rotate(images, angles):
    """Rotates [B, H, W, C] float images about their centres by angles [B] (radians)."""
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    cos, sin = tf.cos(angles), tf.sin(angles)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    zeros = tf.zeros_like(angles)  # output (x, y) samples input (cos*x - sin*y + a, sin*x + cos*y + b)
    transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                           sin, cos, cy - sin * cx - cos * cy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, Pillow's convert("L")


def _saturate(images, saturation):
    """[B, S, S, 3] -> the same with each image's colour saturation scaled by
    saturation [B] (0: grayscale, three equal channels of its luma; 1: unchanged;
    above 1: more colourful). One batched 3x3 colour matrix an image: s I + (1 - s) L,
    where L maps a pixel to its luma in every channel."""
    s = tf.cast(tf.reshape(saturation, [-1, 1, 1]), images.dtype)
    to_luma = tf.tile(tf.constant(LUMA, images.dtype)[:, tf.newaxis], [1, 3])  # [3 in, 3 out]
    matrix = s * tf.eye(3, dtype=images.dtype) + (1 - s) * to_luma  # [B, 3, 3]
    shape = tf.shape(images)
    flat = tf.reshape(images, tf.stack([shape[0], -1, 3]))
    return tf.reshape(tf.matmul(flat, matrix), shape)


def _low_resolution(images, which, factor):
    """[B, S, S, 3] -> the same, images where which [B] is true made low-resolution:
    the mean of each factor x factor block, then bilinear back to the side. Only
    those images are resampled (gathered, then scattered back)."""
    index = tf.where(which)
    chosen = tf.gather_nd(images, index)
    size = tf.shape(images)[1:3]
    small = tf.nn.avg_pool2d(chosen, factor, factor, "VALID")
    return tf.tensor_scatter_nd_update(images, index, tf.image.resize(small, size, method="bilinear"))


def exposure_draws(seed, n):
    """finish's first per-image draws for a seed ([2] int tensor) and n images: the
    rotation in [-1, 1] ([n], times rotation_deg), the contrast factor in CONTRAST_RANGE
    and the brightness shift in [-MAX_BRIGHTNESS, MAX_BRIGHTNESS] ([n, 1, 1, 1] each)."""
    u = tf.random.stateless_uniform(tf.stack([3, n]), tf.cast(seed, tf.int64), -1.0, 1.0)
    lo, hi = CONTRAST_RANGE
    return (u[0], tf.reshape(lo + (u[1] + 1) / 2 * (hi - lo), [-1, 1, 1, 1]),
            tf.reshape(u[2] * MAX_BRIGHTNESS, [-1, 1, 1, 1]))


def _black_border(images, which, margins):
    """Images [B, S, S, C] with, where which [B], everything outside a box black: the
    box's edges margins [4, B] (top, left, bottom, right, fractions of the side) in
    from the image's. What aligning a tight face crop gives: the photo ends near
    the face, and the warp fills the rest of the layout with black."""
    size = tf.shape(images)[1]
    pos = (tf.cast(tf.range(size), tf.float32) + 0.5) / tf.cast(size, tf.float32)  # [S]
    rows = (pos[None] >= margins[0][:, None]) & (pos[None] < 1.0 - margins[2][:, None])  # [B, S]
    cols = (pos[None] >= margins[1][:, None]) & (pos[None] < 1.0 - margins[3][:, None])
    keep = (rows[:, :, None] & cols[:, None, :]) | ~which[:, None, None]
    return images * tf.cast(keep, images.dtype)[..., None]


def finish(images, seed=None, rotation_deg=DEFAULT_ROTATION_DEG, gray_prob=0.0, lowres_prob=0.0, scale=1.0,
           border_prob=0.0):
    """Stage 2, on a batch: float [B, S, S, 3] in [0, scale] -> standardized float [B, S, S, 3].

    With a seed ([2] int tensor), training: each image is rotated by up to
    +-rotation_deg (0 turns rotation off); with probability lowres_prob made a
    low-resolution photo (1/2 or 1/4 of the side, equally likely: the mean of each
    2x2 or 4x4 block, as a sensor with fewer pixels records it, then bilinear back);
    with probability gray_prob made grayscale; with probability border_prob given
    a tight crop's black border (_black_border: each edge in by up to
    MAX_BORDER of the side); and has its brightness and contrast
    changed, clipped to [0, 1] (without the clip, per-image standardization
    would undo both exactly; with it they saturate highlights and shadows like
    a badly exposed photo). Batched: small per-image ops cost more in overhead
    than in arithmetic. (Mirroring and crop jitter happen in boxes().) scale: the
    pixels' range (255 for crops of uint8 images: the division is folded into the
    contrast's gain, no pass over the batch of its own). In training the clip and
    the standardization are computed in fewer passes (_standardize) than without a
    seed, where tf.image.per_image_standardization keeps the exported models' ops
    plain; the two agree within 1e-4 (a test checks it).
    """
    if seed is not None:
        turn, factor, shift = exposure_draws(seed, tf.shape(images)[0])
        if rotation_deg:
            images = _rotate(images, turn * rotation_deg * math.pi / 180)
        # independent draws, stateless like the others
        v = tf.random.stateless_uniform(tf.stack([2, tf.shape(images)[0]]),
                                        tf.cast(seed, tf.int64) + tf.constant([0, 1], tf.int64))
        if lowres_prob:
            images = _low_resolution(images, v[0] < lowres_prob / 2, 2)
            images = _low_resolution(images, (v[0] >= lowres_prob / 2) & (v[0] < lowres_prob), 4)
        if gray_prob:
            images = _saturate(images, tf.where(v[1] < gray_prob, 0.0, 1.0))
        if border_prob:  # draws of their own: the other draws stay what they were without it
            b = tf.random.stateless_uniform(tf.stack([5, tf.shape(images)[0]]),
                                            tf.cast(seed, tf.int64) + tf.constant([0, 2], tf.int64))
            images = _black_border(images, b[0] < border_prob, b[1:] * MAX_BORDER)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        # clip(((x - mean) * factor + mean) / scale + shift, 0, 1) is gain * clip(x, low, high)
        # + offset with gain > 0, and standardization removes the gain and the offset:
        # the clip is two passes over the batch, not four
        gain = factor / scale
        offset = mean * (1.0 / scale - gain) + shift
        return _standardize(tf.clip_by_value(images, -offset / gain, (1.0 - offset) / gain), gain)
    if scale != 1.0:
        images = images / scale
    return tf.image.per_image_standardization(images)


def _standardize(images, gain):
    """tf.image.per_image_standardization(gain * images) for gain [B, 1, 1, 1] > 0,
    in three passes over the batch (per_image_standardization makes six): the mean,
    then the centred images and their Euclidean norm, then one multiply."""
    root = tf.sqrt(tf.cast(tf.reduce_prod(tf.shape(images)[1:]), images.dtype))
    centred = images - tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    stddev = gain * tf.math.reduce_euclidean_norm(centred, axis=[1, 2, 3], keepdims=True) / root
    return centred * (gain / tf.maximum(stddev, 1.0 / root))


def preprocess(image, image_size, crop=CROPS[DEFAULT_CROP], augment=False, seed=None,
               rotation_deg=DEFAULT_ROTATION_DEG):
    """The shared preprocessing of one image: crop_resize then finish.

    Args:
      image: uint8 [H, W, 3] tensor (any size).
      image_size: side of the square output.
      crop: (top, left, height, width) fractions, from parse_crop.
      augment: random flip, crop/scale jitter, rotation, brightness, contrast.
      seed: int [2] tensor; required when augment is on.
    Returns:
      float32 [image_size, image_size, 3], standardized per image (zero mean, unit variance).
    """
    if augment:
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        return finish(crop_resize(image, image_size, boxes(crop, 1, seeds[0])), seeds[1], rotation_deg)[0]
    return finish(crop_resize(image, image_size, boxes(crop)))[0]
