"""The segmentation card's figures: validation images with their true and predicted masks laid
over them, per-class IoU bars of the model beside the baseline's, and the same as an HTML table.

Masks are drawn in VOC's colour map (the colours of the dataset's own PNGs); ``IGNORE`` pixels
(255) are left uncoloured in the truth, so the border reads as "not scored". Class names are user
data (``classes.txt``): in the figures they are shown as plain text (no matplotlib math), in HTML
they are escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; there is no display on training machines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from zooflow.tasks.segmentation.voc import IGNORE, voc_palette

OPACITY = 0.7  # of a mask's colour over the photograph


def _plain(text: str) -> str:
    """``text`` as matplotlib shows it literally (an unescaped ``$`` pair would start math mode)."""
    return str(text).replace("$", r"\$")


def _colours() -> np.ndarray:
    """VOC's colour map as a 256 x 3 array of 0-1 floats."""
    return np.asarray(voc_palette(), dtype=np.float64).reshape(256, 3) / 255


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (HxWx3 uint8) with every pixel of a class other than the first (background)
    tinted in the class's VOC colour; background and ``IGNORE`` pixels show the photograph."""
    picture = image.astype(np.float64) / 255
    colours = _colours()[mask]
    tinted = (mask != 0) & (mask != IGNORE)
    picture[tinted] = (1 - OPACITY) * picture[tinted] + OPACITY * colours[tinted]
    return picture


def overlays(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
             classes: Sequence[str], path: Path) -> Path:
    """One row per validation image: the photograph, the true mask over it, the predicted mask
    over it; a legend of the classes that appear, in their colours."""
    rows = max(len(images), 1)
    figure, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for row, (image, truth, predicted) in enumerate(zip(images, truths, predictions)):
        for column, (picture, title) in enumerate(((image / 255, "image"), (overlay(image, truth), "ground truth"),
                                                   (overlay(image, predicted), "prediction"))):
            axes[row, column].imshow(picture)
            axes[row, column].set_title(title, fontsize=9)
    for axis in axes.ravel():
        axis.axis("off")
    seen = sorted({int(v) for mask in [*truths, *predictions] for v in np.unique(mask)
                   if 0 < v < len(classes)})
    colours = _colours()
    figure.legend(handles=[Patch(color=colours[value], label=_plain(classes[value])) for value in seen],
                  loc="lower center", ncol=min(len(seen), 6) or 1, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def iou_bars(model_ious: Sequence[float], baseline_ious: Sequence[float], classes: Sequence[str],
             path: Path) -> Path:
    """Horizontal bars of each class's IoU, the model's beside the baseline's (a class with no
    IoU - in neither truth nor prediction - has no bar)."""
    positions = np.arange(len(classes))
    figure, axis = plt.subplots(figsize=(6, 0.45 * len(classes) + 1.2))
    model = [0 if math.isnan(v) else v for v in model_ious]
    baseline = [0 if math.isnan(v) else v for v in baseline_ious]
    axis.barh(positions - 0.2, model, height=0.4, label="model", color="tab:blue")
    axis.barh(positions + 0.2, baseline, height=0.4, label="baseline", color="tab:gray")
    axis.set_yticks(positions, [_plain(name) for name in classes])
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("IoU")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def iou_table_html(model_ious: Sequence[float], baseline_ious: Sequence[float], classes: Sequence[str],
                   path: Path) -> Path:
    """The per-class IoU of the model and the baseline as an HTML table ("-": no IoU)."""
    rows = "\n".join(f"<tr><td>{html.escape(str(name))}</td><td>{_cell(m)}</td><td>{_cell(b)}</td></tr>"
                     for name, m, b in zip(classes, model_ious, baseline_ious))
    path.write_text("<table>\n<tr><th>class</th><th>model IoU</th><th>baseline IoU</th></tr>\n"
                    f"{rows}\n</table>\n")
    return path
