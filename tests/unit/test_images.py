"""images.decode: what is converted on purpose (and checked pixel by pixel), what is refused."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from zooflow.data import images
from zooflow.data.raw_images import decode_image


def encoded(image: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (never allocated)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_16bit_grey_is_scaled_by_bit_depth_not_saturated():
    pixels = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    data = encoded(Image.fromarray(pixels))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    decoded = images.decode(data)
    assert decoded.steps == ("16-bit->8-bit",) and decoded.stored_mode == "I;16"
    assert np.asarray(decoded.image)[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.asarray(images.open_grey(data))[0].tolist() == [0, 1, 128, 255]


def test_32bit_int_image_uses_the_smallest_depth_that_holds_it():
    as_int = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32))
    assert as_int.mode == "I"
    assert np.asarray(images._to_8bit(as_int))[0].tolist() == [0, 4, 255]
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    assert np.asarray(images._to_8bit(small))[0].tolist() == [0, 100, 255]


def test_cmyk_becomes_rgb():
    cyan_free_red = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    decoded = images.decode(encoded(cyan_free_red, "JPEG", quality=100))
    assert decoded.steps == ("CMYK->RGB",)
    assert np.abs(np.asarray(decoded.image)[8, 8].astype(int) - [255, 0, 0]).max() <= 3


def test_transparency_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)      # opaque red stays red
    rgba[0, 1] = (0, 0, 0, 0)          # transparent black becomes white, not black
    rgba[0, 2] = (0, 0, 0, 128)        # half-transparent black: mid grey
    decoded = images.decode(encoded(Image.frombytes("RGBA", (4, 4), rgba.tobytes())))
    assert decoded.steps == ("alpha on white",)
    out = np.asarray(decoded.image)
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [255, 255, 255]
    assert 120 <= out[0, 2, 0] <= 135
    grey_alpha = Image.frombytes("LA", (1, 1), bytes([0, 0]))
    assert np.asarray(images.decode(encoded(grey_alpha)).image)[0, 0].tolist() == [255, 255, 255]


def test_palette_with_a_transparent_entry_is_composited_on_white():
    palette = Image.frombytes("P", (2, 1), bytes([0, 1]))
    palette.putpalette([0, 0, 0, 0, 0, 255])
    decoded = images.decode(encoded(palette, transparency=0))
    assert decoded.steps == ("alpha on white",)
    assert np.asarray(decoded.image)[0].tolist() == [[255, 255, 255], [0, 0, 255]]
    opaque = images.decode(encoded(palette))
    assert opaque.steps == () and np.asarray(opaque.image)[0].tolist() == [[0, 0, 0], [0, 0, 255]]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6
    decoded = images.decode(encoded(image, "JPEG", exif=exif.tobytes()))
    assert decoded.steps == ("exif-rotated",) and decoded.image.size == (20, 40)
    assert images.decode(encoded(image, "JPEG")).image.size == (40, 20)


def test_plain_images_are_not_reported_as_converted():
    for mode in ("RGB", "L", "1"):
        assert images.decode(encoded(Image.new(mode, (8, 8)))).steps == ()
    assert images.open_rgb(encoded(Image.new("L", (8, 8), 7))).getpixel((0, 0)) == (7, 7, 7)


def test_bombs_are_refused_before_decoding():
    with pytest.raises(images.ImageRejected, match="decompression bomb"):
        images.decode(png_declaring(30_000, 30_000))
    with pytest.raises(images.ImageRejected, match=r"declares 12000x20 pixels, over the 10000"):
        images.decode(png_declaring(12_000, 20))
    with pytest.raises(images.ImageRejected, match=r"declares 300x20 pixels, over the 256"):
        images.decode(png_declaring(300, 20), max_side=256)


def test_unusable_input_is_refused_by_name(tmp_path):
    with pytest.raises(images.ImageRejected, match="not in an image format"):
        images.decode(b"")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(encoded(Image.new("RGB", (64, 64)), "JPEG")[:200])
    with pytest.raises(images.ImageRejected, match="cut.jpg: cannot decode"):
        images.open_rgb(cut)
    floats = Image.fromarray(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(images.ImageRejected, match="pixel format F is not supported"):
        images.decode(encoded(floats, "TIFF"))


def test_serving_decodes_bytes_by_the_same_rules():
    pixels = np.array([[0, 65535]], dtype=np.uint16)
    assert np.asarray(decode_image(encoded(Image.fromarray(pixels))))[0, 1].tolist() == [255, 255, 255]
    assert decode_image(encoded(Image.new("RGB", (8, 8))), mode="L").mode == "L"
    with pytest.raises(ValueError):  # ImageRejected is a ValueError too: servers answer 400
        decode_image(b"not an image")


def test_served_base64_may_come_on_one_line_or_wrapped_as_text_or_bytes():
    """What JSON and CSV bodies carry: `base64 -w0`, or `base64`/encodebytes' 76-column lines
    (MLflow hands a CSV cell over as text, a JSON string for a binary column as its bytes)."""
    import base64

    from zooflow.data.raw_images import file_bytes

    png = encoded(Image.new("RGB", (40, 40), (200, 10, 10)))
    wrapped = base64.encodebytes(png)
    assert wrapped.count(b"\n") > 1
    for item in (base64.b64encode(png).decode(), wrapped.decode(), wrapped, b"\r\n" + wrapped, png):
        assert file_bytes(item) == png
    assert decode_image(wrapped.decode()).getpixel((0, 0)) == (200, 10, 10)
    with pytest.raises(ValueError, match="base64 of the image file"):
        file_bytes("not base64 at all!")
