"""Images as served models receive and return them: encoded bytes (what JSON/REST can carry)
or uint8 arrays (in process)."""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from zooflow.data import images

COLUMN = "image"  # the DataFrame column a served image model reads
# Bytes made only of base64 characters: no file format a served model takes starts like that
# (JPEG, PNG, GIF, WebP, BMP, TIFF; mp4/mov, Matroska/WebM, AVI all open with binary magic), so
# such bytes are base64 text, not a file. Line breaks are allowed: `base64` without -w0, Python's
# base64.encodebytes (and this project's own mask/image answers) wrap every 76 characters. Spaces
# are not: a short text file ("not a video") is a file the model refuses by name, not base64.
_BASE64_BYTES = re.compile(rb"[A-Za-z0-9+/_\-\r\n]+={0,2}[\r\n]*")


def image_items(raw) -> list:
    """The images of a pyfunc input: a DataFrame's ``image`` column, or the list itself."""
    if isinstance(raw, pd.DataFrame):
        if COLUMN not in raw:
            raise ValueError(f"expected a column '{COLUMN}' (encoded bytes), got columns {list(raw.columns)}")
        return raw[COLUMN].tolist()
    return list(raw)


def decode_image(item: Any, mode: str = "RGB") -> Image.Image:
    """A raw image - encoded bytes (JPEG/PNG/...), or an HxWxC / HxW uint8 array - in ``mode``.
    Bytes are decoded by ``images.decode``, the same rules as training data (EXIF rotation,
    16-bit, CMYK, alpha on white; bombs and unknown formats refused as ``ImageRejected``).
    A string is base64 of encoded bytes: JSON cannot carry bytes, so REST clients send that."""
    item = file_bytes(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        if mode not in ("RGB", "L"):
            return images.open_rgb(bytes(item)).convert(mode)
        return images.decode(bytes(item), mode).image
    array = np.asarray(item)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"an image array must be HxWxC or HxW uint8, got shape {array.shape} dtype {array.dtype}")
    return Image.fromarray(array).convert(mode)


def file_bytes(item: Any, what: str = "image") -> Any:
    """A served file (``what``: image, clip) as its bytes when it came as base64 - a string (JSON
    cannot carry bytes, so REST clients send that) or bytes that are base64 text (MLflow's
    server hands an ``instances``/``inputs`` string to a binary column as its ASCII bytes; only
    ``dataframe_*`` bodies are decoded for us); anything else unchanged."""
    if isinstance(item, str):
        return from_base64(item, what)
    if isinstance(item, (bytes, bytearray)) and _BASE64_BYTES.fullmatch(item):
        return from_base64(bytes(item).decode("ascii"), what)
    return item


def from_base64(text: str, what: str = "image") -> bytes:
    """The bytes of a base64 string (standard or URL-safe alphabet, on one line or wrapped);
    ValueError if it is not one."""
    try:
        return base64.b64decode("".join(text.split()).replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        article = "an" if what[:1] in "aeiou" else "a"
        raise ValueError(f"{article} {what} string must be base64 of the {what} file's bytes, "
                         f"got {text[:40]!r}") from None


def encode_png(pixels: np.ndarray) -> bytes:
    """A uint8 HxW (grey) or HxWxC array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
