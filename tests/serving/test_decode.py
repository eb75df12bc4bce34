"""Decoding a served photo in the graph (serving/decode.py): every format as Pillow
reads it, junk and bombs refused by name from the header, a GIF read as its first
frame, transparency on white."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from siamese_graph.data import photos
from siamese_graph.serving import decode, phone, signatures
from tests.conftest import face

v1 = tf.compat.v1


def _encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _decode_all(strings, name="images"):
    with tf.Graph().as_default():
        x = v1.placeholder(tf.string, [None])
        out, _ = signatures.photo_batch(x, 32, (0.0, 0.0, 1.0, 1.0), name)
        with v1.Session() as sess:
            return sess.run(out, {x: strings})


def test_photo_batch_decodes_every_format_like_pillow():
    rgb = face(4, 2, size=(40, 48))
    gray = rgb.convert("L")
    cases = [(_encode(rgb, "PNG"), rgb), (_encode(gray, "PNG"), gray.convert("RGB")),
             (_encode(rgb.convert("RGBA"), "PNG"), rgb), (_encode(rgb, "BMP"), rgb),
             (_encode(gray, "GIF"), gray.convert("RGB"))]
    got = _decode_all([c[0] for c in cases])
    for (_, im), out in zip(cases, got):
        want = phone.phone_face(np.asarray(im), (0.0, 0.0, 1.0, 1.0), 32)
        assert np.abs(out - want).max() < 1e-5
    # A JPEG is decoded as records are (preprocessing.decode: the fast integer IDCT); the
    # rest of the path is lossless, so it matches the phone reference on the pixels that
    # decoder gives to float rounding. Pillow's IDCT (the accurate one) differs from the
    # fast one by a few grey levels: that is the decoders, not the path.
    jpeg = _encode(rgb, "JPEG", quality=95)
    out = _decode_all([jpeg])[0]
    fast = tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_FAST").numpy()
    assert np.abs(out - phone.phone_face(fast, (0, 0, 1, 1), 32)).max() < 1e-5
    accurate = tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    assert np.array_equal(accurate, np.asarray(Image.open(io.BytesIO(jpeg))))  # what "Pillow's IDCT" means


@pytest.mark.parametrize("bad", [b"", b"not an image at all", b"\x00\x01\x02\x03"])
def test_a_non_image_names_the_input(bad):
    good = _encode(face(1, 1), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_b: an element is empty or not a JPEG"):
        _decode_all([good, bad], name="image_b")


def test_random_bytes_are_refused_without_echoing_them():
    junk = bytes(range(255, 127, -1)) * 4  # not UTF-8: the old message echoed these raw bytes
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        _decode_all([junk], name="image_a")
    assert "image_a: an element is empty or not a JPEG" in e.value.message
    assert "[255 254 253" in e.value.message  # the first bytes as numbers
    e.value.message.encode("utf-8")


def _huge_header(fmt):
    """A small real photo whose header claims 20000 x 20000 pixels (as a 1.2 MB PNG of
    that size would): the size check must read it before any decoding."""
    import struct

    data = bytearray(_encode(face(1, 1), fmt.split()[0]))
    if fmt == "GIF frame":  # a small screen, its first frame's descriptor 20000 x 20000
        at = _gif_walk(bytes(data))["descriptor"]
        data[at + 5:at + 9] = struct.pack("<HH", 20000, 20000)
    elif fmt == "PNG":
        data[16:24] = struct.pack(">II", 20000, 20000)
    elif fmt == "GIF":
        data[6:10] = struct.pack("<HH", 20000, 20000)
    else:  # BMP
        data[18:26] = struct.pack("<ii", 20000, -20000)
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "GIF frame", "BMP"])
def test_a_photo_over_the_served_limit_is_refused_from_its_header(fmt):
    import time

    start = time.time()
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_b: a photo is over the served limit"):
        _decode_all([_encode(face(1, 1), "PNG"), _huge_header(fmt)], name="image_b")
    assert time.time() - start < 20  # decoding 20000 x 20000 takes minutes here


def test_refusing_a_huge_header_costs_no_memory(tmp_path):
    """The memory the refusal itself takes, measured in a fresh process (a test worker's
    lifetime peak may have been reached earlier): the peak after a normal photo, then
    the growth of each refused one. Decoding 20000 x 20000 would take 1.2 GB; the 200 MB
    bound leaves room for the allocator's noise, measured at under 20 MB. The same for a
    GIF of 60 frames of 2000 x 2000 (12 MB a frame decoded): its first frame alone grew
    the peak by 19 MB, all 60 frames by 241 MB (measured with tf.io.decode_image), so
    100 MB tells the two apart."""
    import subprocess
    import sys

    from tests.conftest import REPO

    (tmp_path / "animation.gif").write_bytes(_animation(60, 2000))
    code = (
        "import resource, sys, tensorflow as tf\n"
        "from tests.serving.test_decode import _decode_all, _encode, _huge_header\n"
        "from tests.conftest import face\n"
        "_decode_all([_encode(face(1, 1), 'PNG')])\n"
        "for fmt in ('PNG', 'GIF', 'BMP', 'GIF frame', 'animation'):\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    data = open(sys.argv[1], 'rb').read() if fmt == 'animation' else _huge_header(fmt)\n"
        "    try:\n"
        "        _decode_all([data])\n"
        "        print(fmt.replace(' ', '_'), 'decoded', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
        "    except tf.errors.InvalidArgumentError:\n"
        "        print(fmt.replace(' ', '_'), 'refused', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "animation.gif")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = {line.split()[0]: (line.split()[1], float(line.split()[2])) for line in r.stdout.splitlines()}
    assert {k: v[0] for k, v in got.items()} == {"PNG": "refused", "GIF": "refused", "BMP": "refused",
                                                 "GIF_frame": "refused", "animation": "decoded"}, got
    assert all(mb < 200 for _, mb in got.values()), got
    assert got["animation"][1] < 100, got


def test_a_jpeg_over_the_served_limit_is_refused_from_its_header():
    import struct

    data = bytearray(_encode(face(1, 1), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)  # SOF0: height, width
    with pytest.raises(tf.errors.InvalidArgumentError, match="over the served limit"):
        _decode_all([bytes(data)])


def test_served_photos_show_transparent_pixels_white():
    """The served graph reads a transparent PNG as the commands do (photos.to_rgb):
    composited on white, so a fully transparent picture is blank, not its hidden colours."""
    rgb = np.asarray(face(2, 1, size=(32, 32)))
    for alpha in (0, 128, 255):
        im = Image.fromarray(np.dstack([rgb, np.full((32, 32), alpha, np.uint8)]), "RGBA")
        with tf.Graph().as_default():
            decoded = decode.decode_photo(tf.constant(_encode(im, "PNG")), "image")
            with v1.Session() as sess:
                got = sess.run(decoded).astype(int)
        want = photos.to_rgb(im).astype(int)
        assert np.abs(got - want).max() <= 1, alpha  # Pillow's integer rounding
    assert (got == rgb).all() and alpha == 255


# --- GIF: the first frame, measured by its frame ------------------------------------------

def _gif_walk(data):
    """A plain-Python walk of a GIF's blocks (the reference gif_first_frame is checked
    against): {"descriptor": offset of the first image descriptor, "end": offset just
    past its data}."""
    table = lambda packed: 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0  # noqa: E731
    pos, descriptor = 13 + table(data[10]), None
    while True:
        if data[pos] == 0x21:
            pos += 2
        elif data[pos] == 0x2C:
            descriptor = pos
            pos += 10 + table(data[pos + 9]) + 1
        else:
            raise ValueError("no image")
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
        if descriptor is not None:
            return {"descriptor": descriptor, "end": pos}


def _animation(frames, side):
    """An animated GIF: frames of one colour each, a different colour every frame."""
    images = []
    for k in range(frames):
        im = Image.new("P", (side, side), k % 200)
        im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        images.append(im)
    return _encode(images[0], "GIF", save_all=True, append_images=images[1:], optimize=False)


def test_the_graphs_walk_finds_the_first_frame_where_python_does():
    rng = np.random.RandomState(0)
    frames = [Image.fromarray(rng.randint(0, 255, (30 + k, 20 + 2 * k, 3)).astype(np.uint8)) for k in range(3)]
    cases = {"single": _encode(frames[0], "GIF"), "gray": _encode(frames[0].convert("L"), "GIF"),
             "animated": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
             "comment": _encode(frames[0], "GIF", comment=b"x" * 600)}
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.string, [])
        walk = decode.gif_first_frame(x)
        with tf.compat.v1.Session() as sess:
            for name, data in cases.items():
                end, height, width = sess.run(walk, {x: data})
                assert end == _gif_walk(data)["end"], name
                assert (height, width) == (30, 20), name
            assert sess.run(walk, {x: cases["single"][:-300]})[0] == -1  # cut inside the frame
    assert _gif_walk(cases["animated"])["end"] < len(cases["animated"]) - 1000  # frames follow


def test_an_animated_gif_is_its_first_frame():
    rng = np.random.RandomState(1)
    frames = [Image.fromarray(rng.randint(0, 255, (48, 40, 3)).astype(np.uint8)) for _ in range(4)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.string, [])
        out = decode.decode_photo(x, "image")
        with tf.compat.v1.Session() as sess:
            got = sess.run(out, {x: data})
    first = Image.open(io.BytesIO(data))
    assert first.n_frames == 4 and np.array_equal(got, np.asarray(first.convert("RGB")))
    first.seek(1)
    assert not np.array_equal(got, np.asarray(first.convert("RGB")))  # the control: frames differ


def test_a_cut_gif_is_named():
    data = _encode(face(1, 1), "GIF")
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_a: a GIF whose first frame is incomplete"):
        _decode_all([data[:len(data) // 2]], name="image_a")


def test_a_cut_jpeg_is_named_and_a_whole_one_with_trailing_bytes_is_not():
    data = _encode(face(1, 1), "JPEG")
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_b: a JPEG cut short"):
        _decode_all([data, data[:len(data) // 2]], name="image_b")
    assert _decode_all([data + b"\0" * 40]).shape == (1, 32, 32, 3)  # bytes after the marker, as cameras write



def _with_orientation(im, orientation, byte_order="II"):
    """A JPEG of im whose EXIF says orientation; byte_order "MM" writes the TIFF
    header big-endian (as some cameras do), by hand."""
    if byte_order == "II":
        exif = Image.Exif()
        exif[photos.EXIF_ORIENTATION] = orientation
        return _encode(im, "JPEG", quality=95, exif=exif.tobytes())
    ifd = (b"MM\x00\x2a" + (8).to_bytes(4, "big") + (2).to_bytes(2, "big")
           + (0x010F).to_bytes(2, "big") + (2).to_bytes(2, "big") + (4).to_bytes(4, "big") + b"cam\x00"
           + (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
           + orientation.to_bytes(2, "big") + b"\x00\x00" + (0).to_bytes(4, "big"))
    return _encode(im, "JPEG", quality=95, exif=b"Exif\x00\x00" + ifd)


def _decode_one(data):
    with tf.Graph().as_default():
        x = v1.placeholder(tf.string, [])
        out = decode.decode_photo(x, "images", exact_jpeg=True)
        orientation = decode.jpeg_orientation(x)
        with v1.Session() as sess:
            return sess.run((out, orientation), {x: data})


@pytest.mark.parametrize("byte_order", ["II", "MM"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_turned_upright_by_its_exif_orientation_as_pillow_turns_it(orientation, byte_order):
    # a phone stores a portrait photo as a landscape frame with orientation 6
    data = _with_orientation(face(3, 1, size=(40, 56)), orientation, byte_order)
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif().get(photos.EXIF_ORIENTATION) == orientation
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).astype(int)
    got, read = _decode_one(data)
    assert read == orientation
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want).max() <= 2  # the same pixels, turned the same way


@pytest.mark.parametrize("junk", [b"Exif\x00\x00", b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",
                                  b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x01" * 30])
def test_an_unreadable_exif_is_the_photo_as_stored(junk):
    im = face(2, 2, size=(40, 56))
    data = _encode(im, "JPEG", quality=95, exif=junk)
    got, read = _decode_one(data)
    assert read == 1
    assert got.shape == (56, 40, 3)


def test_exif_bytes_outside_an_app1_segment_are_not_read():
    # "Exif\0\0" in a comment segment (FF FE) is not an EXIF header
    im = face(2, 2, size=(40, 56))
    data = _encode(im, "JPEG", quality=95)
    fake = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00"
    comment = b"\xff\xfe" + (len(fake) + 2).to_bytes(2, "big") + fake
    got, read = _decode_one(data[:2] + comment + data[2:])
    assert read == 1
    assert got.shape == (56, 40, 3)
