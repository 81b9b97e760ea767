"""Images as served models receive and return them: encoded bytes (what JSON/REST can carry)
or uint8 arrays (in process)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from zooflow.data import images

COLUMN = "image"  # the DataFrame column a served image model reads


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
    16-bit, CMYK, alpha on white; bombs and unknown formats refused as ``ImageRejected``)."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        if mode not in ("RGB", "L"):
            return images.open_rgb(bytes(item)).convert(mode)
        return images.decode(bytes(item), mode).image
    array = np.asarray(item)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"an image array must be HxWxC or HxW uint8, got shape {array.shape} dtype {array.dtype}")
    return Image.fromarray(array).convert(mode)


def encode_png(pixels: np.ndarray) -> bytes:
    """A uint8 HxW (grey) or HxWxC array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
