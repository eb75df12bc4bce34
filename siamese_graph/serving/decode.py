"""Decoding a served photo in the graph, within bounds: the format and the size are
read from the header before any pixel is decoded, and a GIF is one frame.

A client can send any bytes. What is refused (InvalidArgumentError naming the
input): an empty string or one that is not a JPEG, PNG, GIF or BMP; a photo over
MAX_PHOTO_PIXELS pixels or MAX_PHOTO_SIDE on a side, read from its header (JPEG's
SOF with tf.image.extract_jpeg_shape; PNG's IHDR; BMP's BITMAPINFOHEADER; for a GIF
its logical screen and its first frame's image descriptor, whichever is larger,
since a frame may be larger than the screen it claims); a GIF whose first frame
does not end within MAX_GIF_BLOCKS data blocks; a JPEG cut short (no end-of-image
marker in its last 64 bytes).

A JPEG is turned upright by its EXIF orientation (tag 0x0112 in the APP1 segment's
first IFD), as a viewer shows it and as the commands read it (Pillow's
ImageOps.exif_transpose): a phone stores a portrait photo as a landscape frame
with orientation 6. A missing or unreadable tag is orientation 1 (as stored).

A GIF is read as a viewer shows it before it plays: its first frame. The bytes up
to the end of that frame, plus the trailer, are what is decoded (TensorFlow's GIF
decoder decodes every frame of what it is given; an animation of 180 large frames
cost seconds and gigabytes).
"""
import tensorflow as tf

from siamese_graph.data import preprocessing

FORMATS = "JPEG, PNG, GIF or BMP"


MAX_PHOTO_PIXELS = 25_000_000  # a served photo's limit, checked in its header before decoding


MAX_PHOTO_SIDE = 10_000


# Data sub-blocks are at most 255 bytes: a first frame of MAX_PHOTO_PIXELS at LZW's
# widest code (12 bits a pixel) takes 37.5 MB, 147,000 blocks; extensions before it
# take a few. Walking one block is a few scalar ops.
MAX_GIF_BLOCKS = 160_000


GIF_TRAILER = b"\x3b"


def is_image(encoded):
    """True for the first bytes of a JPEG, PNG, GIF or BMP file."""
    head = tf.strings.substr(encoded, 0, 4)
    return tf.reduce_any(tf.stack([
        tf.io.is_jpeg(encoded), tf.equal(head, b"\x89PNG"), tf.equal(head, b"GIF8"),
        tf.equal(tf.strings.substr(encoded, 0, 2), b"BM")]))


def _is_gif(encoded):
    return tf.equal(tf.strings.substr(encoded, 0, 4), b"GIF8")


def gif_first_frame(encoded):
    """Walks a GIF's blocks (header, colour tables, extensions, image descriptors,
    data sub-blocks) to the end of its first frame, without decoding.

    Args:
      encoded: scalar string, a GIF file's bytes.
    Returns:
      (end, height, width): int64 scalars. end is the offset just past the first
      frame's data (-1 if the walk found no complete frame within MAX_GIF_BLOCKS
      blocks or the bytes end first); height, width: the first frame's extent
      (its offset plus its size, from its image descriptor).
    """
    b = tf.cast(tf.io.decode_raw(encoded, tf.uint8), tf.int64)
    n = tf.size(b, out_type=tf.int64)

    def at(i):
        i = tf.convert_to_tensor(i, tf.int64)
        return tf.where(i < n, tf.gather(b, tf.clip_by_value(i, 0, tf.maximum(n - 1, 0))), tf.constant(-1, tf.int64))

    def table(packed):  # a colour table's bytes after a packed field with its flag in bit 7
        return tf.where(tf.bitwise.bitwise_and(packed, 0x80) > 0,
                        3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7)),
                        tf.constant(0, tf.int64))

    # mode 0: between blocks; 1: in an extension's sub-blocks; 2: in the first image's
    # sub-blocks. stop: 0 walking, 1 done (end set), 2 no frame (trailer, junk, bytes end)
    start = 13 + table(at(10))
    zero = tf.constant(0, tf.int64)

    def body(pos, mode, stop, end, height, width, steps):
        byte = at(pos)
        le16 = lambda i: at(i) + 256 * at(i + 1)  # noqa: E731
        in_blocks = tf.equal(mode, 0)
        extension = in_blocks & tf.equal(byte, 0x21)
        image = in_blocks & tf.equal(byte, 0x2C)
        sub = tf.logical_not(in_blocks)
        last_sub = sub & tf.equal(byte, 0)
        new_pos = tf.where(extension, pos + 2, tf.where(
            image, pos + 10 + table(at(pos + 9)) + 1, pos + byte + 1))
        new_mode = tf.where(extension, tf.constant(1, tf.int64), tf.where(
            image, tf.constant(2, tf.int64), tf.where(last_sub, zero, mode)))
        done = last_sub & tf.equal(mode, 2)
        junk = (in_blocks & ~extension & ~image) | (byte < 0)
        new_stop = tf.where(done, tf.constant(1, tf.int64), tf.where(junk, tf.constant(2, tf.int64), stop))
        height = tf.where(image, le16(pos + 3) + le16(pos + 7), height)
        width = tf.where(image, le16(pos + 1) + le16(pos + 5), width)
        return new_pos, new_mode, new_stop, tf.where(done, pos + 1, end), height, width, steps + 1

    def cond(pos, mode, stop, end, height, width, steps):
        return tf.equal(stop, 0) & (steps < MAX_GIF_BLOCKS)

    _, _, _, end, height, width, _ = tf.while_loop(
        cond, body, [start, zero, zero, tf.constant(-1, tf.int64), zero, zero, zero],
        parallel_iterations=1)
    return end, height, width


# Where an EXIF APP1 segment is looked for (a segment is at most 64 KB; APP1 comes
# before the image data) and how many IFD0 entries are read for the orientation tag.
EXIF_SEARCH_BYTES = 65536


EXIF_MAX_ENTRIES = 64


ORIENTATION_TAG = 0x0112


def jpeg_orientation(encoded):
    """A JPEG's EXIF orientation (int32 scalar, 1 to 8; 1 where there is none).

    Finds the "Exif\\0\\0" header of an APP1 segment (the marker FF E1 and a length
    before it) in the first EXIF_SEARCH_BYTES, reads the TIFF header's byte order
    and first IFD, and the orientation tag among its first EXIF_MAX_ENTRIES entries.
    Every read is bounds-checked: junk gives 1, never an error."""
    head = tf.strings.substr(encoded, 0, EXIF_SEARCH_BYTES)
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)
    n = tf.size(b, out_type=tf.int64)
    parts = tf.strings.split(head, sep="Exif\x00\x00", maxsplit=1)
    found = tf.size(parts) > 1
    start = tf.cast(tf.strings.length(parts[0]), tf.int64)  # offset of "Exif"

    def at(i):  # byte i, or -1 past either end
        ok = (i >= 0) & (i < n)
        return tf.where(ok, tf.gather(b, tf.clip_by_value(i, 0, tf.maximum(n - 1, 0))), -tf.ones_like(i))

    tiff = start + 6
    little = tf.equal(at(tiff), 0x49) & tf.equal(at(tiff + 1), 0x49)  # "II"; "MM" is big-endian
    big = tf.equal(at(tiff), 0x4D) & tf.equal(at(tiff + 1), 0x4D)

    def u16(i):
        lo, hi = tf.where(little, at(i), at(i + 1)), tf.where(little, at(i + 1), at(i))
        return tf.where((lo < 0) | (hi < 0), -tf.ones_like(lo), lo + 256 * hi)

    def u32(i):
        lo, hi = u16(tf.where(little, i, i + 2)), u16(tf.where(little, i + 2, i))
        return tf.where((lo < 0) | (hi < 0), -tf.ones_like(lo), lo + 65536 * hi)

    ifd = tiff + u32(tiff + 4)
    count = tf.minimum(u16(ifd), EXIF_MAX_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(EXIF_MAX_ENTRIES, dtype=tf.int64)
    tags, values = u16(entries), u16(entries + 8)  # a SHORT's value sits in the entry's first 2 value bytes
    match = (tf.range(EXIF_MAX_ENTRIES, dtype=tf.int64) < count) & tf.equal(tags, ORIENTATION_TAG) & (
        values >= 1) & (values <= 8)
    value = tf.where(tf.reduce_any(match), tf.reduce_max(tf.where(match, values, tf.zeros_like(values))),
                     tf.constant(1, tf.int64))
    segment = tf.equal(at(start - 4), 0xFF) & tf.equal(at(start - 3), 0xE1)
    usable = found & segment & (little | big) & (count > 0)
    return tf.cast(tf.where(usable, value, tf.constant(1, tf.int64)), tf.int32)


def upright(image, orientation):
    """image [H, W, C] as stored -> as shown, by EXIF orientation (1 to 8), the way
    Pillow's ImageOps.exif_transpose turns it."""
    def transpose(x):
        return tf.transpose(x, [1, 0, 2])

    branches = [lambda: image,                                      # 1: as stored
                lambda: tf.reverse(image, [1]),                     # 2: mirrored
                lambda: tf.reverse(image, [0, 1]),                  # 3: upside down
                lambda: tf.reverse(image, [0]),                     # 4: mirrored upside down
                lambda: transpose(image),                           # 5: transposed
                lambda: tf.reverse(transpose(image), [1]),          # 6: turned 90 degrees clockwise to show
                lambda: tf.reverse(transpose(image), [0, 1]),       # 7: transverse
                lambda: tf.reverse(transpose(image), [0])]          # 8: turned 90 degrees anticlockwise
    return tf.switch_case(tf.clip_by_value(orientation, 1, 8) - 1, branches)


def header_size(encoded, gif_frame=None):
    """(height, width) int64 of an encoded photo from its header, without decoding it:
    JPEG with tf.image.extract_jpeg_shape, PNG (IHDR) and BMP (BITMAPINFOHEADER) from
    their first 26 bytes, GIF the larger of its logical screen and its first frame
    (gif_frame: gif_first_frame's result when the caller has walked the GIF already)."""
    def from_bytes():
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, 32), tf.uint8, fixed_length=32), tf.int64)
        be32 = lambda i: b[i] * 16777216 + b[i + 1] * 65536 + b[i + 2] * 256 + b[i + 3]  # noqa: E731
        le32 = lambda i: b[i + 3] * 16777216 + b[i + 2] * 65536 + b[i + 1] * 256 + b[i]  # noqa: E731
        signed = lambda v: tf.where(v >= 2 ** 31, v - 2 ** 32, v)  # noqa: E731
        png = tf.equal(tf.strings.substr(encoded, 0, 4), b"\x89PNG")
        h = tf.where(png, be32(20), tf.abs(signed(le32(22))))
        w = tf.where(png, be32(16), tf.abs(signed(le32(18))))
        return tf.stack([h, w])

    def from_gif():
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, 10), tf.uint8, fixed_length=10), tf.int64)
        _, height, width = gif_frame if gif_frame is not None else gif_first_frame(encoded)
        return tf.stack([tf.maximum(b[8] + 256 * b[9], height), tf.maximum(b[6] + 256 * b[7], width)])

    return tf.case([(tf.io.is_jpeg(encoded), lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)),
                    (_is_gif(encoded), from_gif)], default=from_bytes, exclusive=True)


def jpeg_ends(encoded):
    """True when a JPEG's last 64 bytes hold its end-of-image marker (FF D9): a file
    cut short (an interrupted upload) has none, and TensorFlow's decoder would fail
    without naming the input."""
    n = tf.strings.length(encoded)
    tail = tf.strings.substr(encoded, tf.maximum(n - 64, 0), 64)
    b = tf.io.decode_raw(tail + tf.strings.substr(tf.constant(b"\0" * 64), 0, 64 - tf.strings.length(tail)),
                         tf.uint8, fixed_length=64)
    return tf.reduce_any(tf.logical_and(tf.equal(b[:-1], 0xFF), tf.equal(b[1:], 0xD9)))


def first_bytes(encoded):
    """The first 8 bytes as numbers (an error message must not echo raw bytes)."""
    return tf.io.decode_raw(tf.strings.substr(encoded, 0, 8), tf.uint8, fixed_length=8)


def on_white(image):
    """uint8 [H, W, C] with C in 1..4 (gray, gray + alpha, RGB, RGBA) -> uint8 [H, W, 3]
    as a viewer shows it: transparent pixels composited on white, as photos.to_rgb
    does (within a grey level of Pillow's rounding)."""
    channels = tf.shape(image)[-1]
    x = tf.cast(image, tf.float32)
    colour = tf.cond(channels >= 3, lambda: x[..., :3], lambda: tf.tile(x[..., :1], [1, 1, 3]))
    alpha = tf.cond(tf.equal(channels % 2, 0), lambda: x[..., -1:] / 255.0, lambda: tf.ones_like(x[..., :1]))
    return tf.cast(tf.round(colour * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def _decode_gif(encoded, input_name, end):
    whole = tf.debugging.Assert(end > 0, [
        "%s: a GIF whose first frame is incomplete or does not end within %d blocks"
        % (input_name, MAX_GIF_BLOCKS)])
    with tf.control_dependencies([whole]):
        one_frame = tf.strings.join([tf.strings.substr(encoded, 0, tf.cast(end, tf.int32)), GIF_TRAILER])
    return tf.io.decode_gif(one_frame)[0]


def decode_photo(encoded, input_name, exact_jpeg=False):
    """One encoded photo (scalar string) -> uint8 [H, W, 3].

    JPEG is decoded as the records are (preprocessing.decode), or with exact_jpeg
    as Pillow decodes it (the accurate integer IDCT: whole photos, whose faces are
    found as the commands find them in Pillow's pixels); PNG and BMP with
    tf.io.decode_image, a GIF's first frame with tf.io.decode_gif. A JPEG is turned
    upright by its EXIF orientation (jpeg_orientation). Grayscale becomes
    three equal channels; transparent pixels show white (on_white), as in the
    commands. What is refused, before decoding: see the module doc."""
    check = tf.debugging.Assert(is_image(encoded), [
        "%s: an element is empty or not a %s image; its first bytes:" % (input_name, FORMATS),
        first_bytes(encoded)])
    with tf.control_dependencies([check]):
        none = tf.constant(-1, tf.int64), tf.constant(0, tf.int64), tf.constant(0, tf.int64)
        gif_frame = tf.cond(_is_gif(encoded), lambda: gif_first_frame(encoded), lambda: none)  # walked once
        size = header_size(encoded, gif_frame)
    small = tf.debugging.Assert(
        tf.logical_and(tf.reduce_all(size >= 1), tf.logical_and(
            tf.reduce_all(size <= MAX_PHOTO_SIDE), size[0] * size[1] <= MAX_PHOTO_PIXELS)),
        ["%s: a photo is over the served limit of %d pixels (%d on a side) or has no pixels; "
         "height, width:" % (input_name, MAX_PHOTO_PIXELS, MAX_PHOTO_SIDE), size])
    whole = tf.debugging.Assert(tf.logical_or(tf.logical_not(tf.io.is_jpeg(encoded)), jpeg_ends(encoded)), [
        "%s: a JPEG cut short (no end-of-image marker in its last bytes)" % input_name])
    with tf.control_dependencies([small, whole]):
        stored = (lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")) if exact_jpeg else (
            lambda: preprocessing.decode(encoded))

        def jpeg():
            return upright(stored(), jpeg_orientation(encoded))
        return tf.case([(tf.io.is_jpeg(encoded), jpeg),
                        (_is_gif(encoded), lambda: _decode_gif(encoded, input_name, gif_frame[0]))],
                       default=lambda: on_white(tf.io.decode_image(encoded, expand_animations=False)),
                       exclusive=True)
