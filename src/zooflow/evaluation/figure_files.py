"""Writing card figures to disk."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; there is no display on training machines
import matplotlib.pyplot as plt
from PIL import Image


def save_compact_png(figure, path: Path, dpi: int) -> Path:
    """Save ``figure`` as a PNG with a 256-colour palette and close it: photographs in a
    full-colour PNG run to megabytes, and a card only needs them recognisable."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(path, format="PNG", optimize=True)
    return path
