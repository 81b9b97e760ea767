"""One way to open an image, for training, validation, serving and digit import alike.

``open_rgb`` (and ``open_grey`` for digits) decode a file or encoded bytes into an 8-bit image
the models expect. What a plain ``Image.open(...).convert("RGB")`` gets wrong is converted on
purpose here, and each conversion is named (``Decoded.steps``) so a manifest can show it:

- **EXIF orientation** is applied (``ImageOps.exif_transpose``): a phone photo stored sideways
  with an orientation tag is used the way it is shown ("exif-rotated").
- **16-bit grey** (``I;16``, ``I;16B``, ``I;16L``, ``I``) is scaled to 8 bits by its bit depth
  (65535 -> 255, 32768 -> 128) instead of being clipped to white ("16-bit->8-bit"). A 32-bit
  ``I`` image is scaled by the smallest depth (8/16/32 bits) that holds its largest value.
- **CMYK** becomes RGB ("CMYK->RGB").
- **Transparency** (RGBA, LA, a palette with a transparent colour) is composited on white, not on
  black, the way viewers show it ("alpha on white").
- Grey, bilevel and palette images without transparency become RGB (or L) as they are: exact,
  not recorded.
- **Anything else** (float images, exotic modes) is refused by name, never guessed.

A **decompression bomb** is refused before any pixel is decoded: an image whose header
declares a side over ``max_side`` (the task config's ``data.max_side``, 10,000 by default), or
more pixels than Pillow's own limit (its ``DecompressionBombWarning`` is turned into an error).
Every refusal is an ``ImageRejected`` naming the file (or "image bytes") and what is wrong.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zooflow.errors import InputRejected

MAX_SIDE = 10_000  # DataChecks.max_side's default: no side of a usable image is longer
ORIENTATION = 0x0112  # the EXIF tag
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
WITH_ALPHA = {"RGBA", "LA", "PA", "RGBa", "La"}
AS_IS = {"RGB", "L", "1", "P"}


class ImageRejected(InputRejected):
    """An image that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Decoded:
    """A decoded 8-bit image, the conversions it needed (empty when none) and its pixel format
    as stored."""

    image: Image.Image
    steps: tuple[str, ...]
    stored_mode: str = ""


def _name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "image bytes"


def _open(source, name: str) -> Image.Image:
    """Open (header only) with Pillow's bomb warning as an error."""
    stream = source if isinstance(source, (str, Path)) else io.BytesIO(bytes(source))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(stream)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageRejected(f"{name}: refused as a decompression bomb before decoding ({error})") from None
        except FileNotFoundError:
            raise ImageRejected(f"{name}: no such file") from None
        except UnidentifiedImageError:
            raise ImageRejected(f"{name}: not in an image format Pillow recognises (empty, truncated "
                                "before its header, or not an image)") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageRejected(f"{name}: cannot decode ({error})") from None


def _check_size(image: Image.Image, name: str, max_side: int) -> None:
    width, height = image.size
    if width > max_side or height > max_side:
        raise ImageRejected(f"{name}: declares {width}x{height} pixels, over the {max_side} pixel limit per side "
                            "(refused before decoding: it could be a decompression bomb)")
    if width < 1 or height < 1:
        raise ImageRejected(f"{name}: declares an empty image ({width}x{height})")


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit grey -> 8-bit grey, scaled by bit depth (not clipped)."""
    pixels = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16"):
        depth = 16
    else:
        if pixels.size and pixels.min() < 0:
            raise ValueError("holds negative pixel values")
        top = pixels.max() if pixels.size else 0
        depth = next(bits for bits in (8, 16, 32) if top < 2 ** bits)
    scaled = np.rint(pixels * 255.0 / (2 ** depth - 1))
    return Image.fromarray(scaled.clip(0, 255).astype(np.uint8), mode="L")


def _on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _convert(image: Image.Image, name: str) -> tuple[Image.Image, list[str]]:
    """The decoded image as RGB (or its grey source as L), and the steps that needed a choice."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        return _on_white(image), ["alpha on white"]
    if mode in WITH_ALPHA:
        return _on_white(image), ["alpha on white"]
    if mode in SIXTEEN_BIT:
        try:
            return _to_8bit(image), ["16-bit->8-bit"]
        except ValueError as error:
            raise ImageRejected(f"{name}: a {mode} image that {error}") from None
    if mode == "CMYK":
        return image.convert("RGB"), ["CMYK->RGB"]
    if mode in AS_IS:
        return image, []
    raise ImageRejected(f"{name}: pixel format {mode} is not supported (8/16-bit grey, RGB, RGBA, palette, "
                        "CMYK are)")


def _decoded(image: Image.Image, name: str, then=lambda image: image):
    """``then(image)`` after a full decode of ``image`` (a truncated or corrupt file fails here,
    not in training), with Pillow's bomb warning as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.load()
            return then(image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageRejected(f"{name}: cannot decode ({error})") from None


def decode(source, mode: str = "RGB", max_side: int = MAX_SIDE) -> Decoded:
    """Decode a file path or encoded bytes fully into ``mode`` ("RGB" or "L"), applying the
    conversions in the module docstring; an ``ImageRejected`` otherwise."""
    name = _name(source)
    image = _open(source, name)
    with image:
        _check_size(image, name, max_side)
        rotated = _decoded(image, name, ImageOps.exif_transpose)
        steps = []
        if image.getexif().get(ORIENTATION, 1) not in (0, 1):
            steps.append("exif-rotated")
        converted, more = _convert(rotated, name)
        steps += more
        if converted.mode != mode:
            if mode == "L" and converted.mode == "RGB":
                steps.append("colour->grey")
            converted = converted.convert(mode)
        else:
            converted = converted.copy()  # detached from the file, which closes here
    return Decoded(converted, tuple(steps), image.mode)


def decode_stored(source, max_side: int = MAX_SIDE) -> tuple[Image.Image, str]:
    """A file path or encoded bytes decoded fully with its pixels as stored, and its file format
    ("PNG", "JPEG", ...): no conversion and no EXIF rotation, so a palette image keeps its
    indices (a label mask's values are class ids, not colours). Refused like ``decode``: a
    decompression bomb, an undecodable file."""
    name = _name(source)
    image = _open(source, name)
    with image:
        _check_size(image, name, max_side)
        return _decoded(image, name, Image.Image.copy), image.format or ""


def open_rgb(source, max_side: int = MAX_SIDE) -> Image.Image:
    """An image file or encoded bytes as 8-bit RGB (see the module docstring for what is
    converted and what is refused). The loader of every image dataset and of serving."""
    return decode(source, "RGB", max_side).image


def open_grey(source, max_side: int = MAX_SIDE) -> Image.Image:
    """An image file or encoded bytes as 8-bit grey (``L``), by the same rules: digit images."""
    return decode(source, "L", max_side).image
