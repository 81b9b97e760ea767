"""The pose card's figures: skeletons of the ground truth next to the prediction, the network's
heatmaps and part affinity fields (PAFs) laid over an image, and an HTML table of OKS AP against
the mean-pose baseline.

Skeletons are drawn on OpenPose's 18 parts (:func:`~zooflow.tasks.pose.skeleton.coco_to_openpose`
adds the neck) along the 17 tree limbs of :data:`~zooflow.tasks.pose.skeleton.LIMBS` - the limbs
the network predicts PAFs for, so the figure shows what the model is asked to connect; CMU's two
redundant shoulder-ear limbs are left out, they only clutter a head. Each limb has its own colour,
the same in every figure. Metric names are shown escaped in HTML.
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
from PIL import Image

from zooflow.evaluation.figure_files import save_compact_png
from zooflow.tasks.pose.skeleton import BACKGROUND, COCO_KEYPOINTS, LIMBS, PARTS, REDUNDANT_LIMBS, coco_to_openpose

DRAWN_LIMBS = tuple(limb for index, limb in enumerate(LIMBS) if index not in REDUNDANT_LIMBS)
_LIMB_COLOURS = plt.get_cmap("hsv")(np.linspace(0, 1, len(DRAWN_LIMBS), endpoint=False))
OPACITY = 0.6  # of a map's colours over the photograph
# Row labels of the OKS table, in its order; other keys follow under their own names.
METRIC_LABELS = {"oks_ap": "OKS AP@[.50:.95]", "oks_ap50": "OKS AP@.50", "oks_ap75": "OKS AP@.75",
                 "oks_ap_medium": "OKS AP (medium)", "oks_ap_large": "OKS AP (large)", "oks_ar": "OKS AR@[.50:.95]"}


def _numpy(values) -> np.ndarray:
    """A tensor (any device, with or without grad, half precision too) or array as a NumPy array.
    matplotlib and PIL must only ever see NumPy: a CUDA tensor or one needing grad breaks them."""
    if hasattr(values, "detach"):
        values = values.detach()
        if values.is_floating_point():
            values = values.float()
        values = values.cpu().numpy()
    return np.asarray(values)



def _people(keypoints) -> np.ndarray:
    """COCO keypoints ``[N, 17, 3]`` as OpenPose parts ``[N, 18, 3]`` whose third value is 2 where
    the keypoint is given (third value > 0), else 0. A prediction's third value is a peak value
    below 1, which :func:`coco_to_openpose` would not count as labelled when it places the neck."""
    keypoints = _numpy(keypoints).astype(np.float32).reshape(-1, len(COCO_KEYPOINTS), 3).copy()
    keypoints[..., 2] = np.where(keypoints[..., 2] > 0, 2.0, 0.0)
    return coco_to_openpose(keypoints)


def _draw_people(axis, people: np.ndarray) -> None:
    for parts in people:
        given = parts[:, 2] > 0
        for (first, second), colour in zip(DRAWN_LIMBS, _LIMB_COLOURS):
            if given[first] and given[second]:
                axis.plot(parts[[first, second], 0], parts[[first, second], 1], color=colour, linewidth=2,
                          solid_capstyle="round")
        axis.scatter(parts[given, 0], parts[given, 1], s=10, c="white", edgecolors="black", linewidths=0.5,
                     zorder=3)


def skeletons(images: Sequence[np.ndarray], truths: Sequence, predictions: Sequence, path: Path,
              max_images: int = 8) -> Path:
    """One row per image (at most ``max_images``): the true people's skeletons on the left, the
    predicted people's on the right. ``truths[i]`` is ``[N, 17, 3]`` and ``predictions[i]``
    ``[M, 17, 3]`` COCO keypoints in image pixels (arrays or tensors); keypoints with a third value
    of 0 (unlabelled, not found) are skipped, and so is every limb touching one."""
    path = Path(path)
    count = min(len(images), len(truths), len(predictions), max_images)
    rows = max(1, count)
    figure, axes = plt.subplots(rows, 2, figsize=(6.4, 3 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row in range(count):
        image = _numpy(images[row])
        for axis, people, title in ((axes[row, 0], _people(truths[row]), "ground truth"),
                                    (axes[row, 1], _people(predictions[row]), "prediction")):
            axis.imshow(image)
            _draw_people(axis, people)
            axis.set_xlim(-0.5, image.shape[1] - 0.5)  # keypoints off the image must not rescale it
            axis.set_ylim(image.shape[0] - 0.5, -0.5)
            axis.set_title(f"{title} ({len(people)} people)", fontsize=8)
    figure.tight_layout()
    return save_compact_png(figure, path, dpi=80)


def _resized(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D float map resized to ``height x width`` by bilinear interpolation (PIL aligns pixel
    centres, the convention of :mod:`zooflow.tasks.pose.targets`)."""
    picture = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def map_overlays(image, heatmaps, pafs, path: Path) -> Path:
    """Three panels: ``image`` (HxWx3 uint8), the largest of its 18 part heatmaps at each pixel over
    it, and the PAF magnitude (per pixel, the longest of the 19 limbs' vectors) over it. ``heatmaps``
    ``[19, h, w]`` (the last channel, background, is not shown) and ``pafs`` ``[38, h, w]`` (x, y per
    limb) are the network's output for the image, arrays or tensors; they are resized to the image.
    Both maps are coloured on a fixed 0..1 scale (a target's peak and a unit vector), so figures of
    different runs compare."""
    path = Path(path)
    image = _numpy(image)
    heatmaps, pafs = _numpy(heatmaps).astype(np.float32), _numpy(pafs).astype(np.float32)
    if heatmaps.ndim != 3 or heatmaps.shape[0] != len(PARTS) + 1:
        raise ValueError(f"heatmaps must be [{len(PARTS) + 1}, h, w], got {heatmaps.shape}")
    if pafs.ndim != 3 or pafs.shape[0] != 2 * len(LIMBS):
        raise ValueError(f"pafs must be [{2 * len(LIMBS)}, h, w], got {pafs.shape}")
    height, width = image.shape[:2]
    parts = _resized(heatmaps[:BACKGROUND].max(axis=0), height, width)
    magnitude = np.sqrt((pafs.reshape(len(LIMBS), 2, *pafs.shape[1:]) ** 2).sum(axis=1)).max(axis=0)
    magnitude = _resized(magnitude, height, width)
    figure, axes = plt.subplots(1, 3, figsize=(9.6, 3.4), squeeze=False)
    panels = ((None, "image"), (parts, "part heatmaps (max over parts)"), (magnitude, "PAF magnitude (max over limbs)"))
    for axis, (values, title) in zip(axes[0], panels):
        axis.imshow(image)
        if values is not None:
            shown = axis.imshow(np.clip(values, 0, 1), cmap="jet", vmin=0, vmax=1, alpha=OPACITY)
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    figure.tight_layout()
    return save_compact_png(figure, path, dpi=80)


def _cell(value) -> str:
    """A metric for the table: three decimals; a dash when absent (e.g. no medium person) or NaN."""
    if value is None or math.isnan(float(value)):
        return "\u2013"
    return f"{float(value):.3f}"


def ap_table_html(model: dict, baseline: dict, path: Path) -> Path:
    """A standalone HTML page (no script, no external resource): one row per OKS metric, the
    model's value beside the mean-pose baseline's; the known metrics first, in
    :data:`METRIC_LABELS`' order, then any other key of either dict under its own (escaped) name."""
    path = Path(path)
    names = [name for name in METRIC_LABELS if name in model or name in baseline]
    names += [name for name in dict.fromkeys([*model, *baseline]) if name not in METRIC_LABELS]
    rows = [f"<tr><td>{html.escape(METRIC_LABELS.get(name, str(name)))}</td><td>{_cell(model.get(name))}</td>"
            f"<td>{_cell(baseline.get(name))}</td></tr>" for name in names]
    page = "\n".join([
        "<!DOCTYPE html>",
        "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>OKS AP</title>",
        "<style>table{border-collapse:collapse;font-family:sans-serif;font-size:14px}"
        "td,th{border:1px solid #ccc;padding:4px 8px}td:not(:first-child){text-align:right}</style></head><body>",
        "<table><thead><tr><th>metric</th><th>model</th><th>mean-pose baseline</th></tr></thead><tbody>",
        *rows,
        "</tbody></table></body></html>",
        ""])
    path.write_text(page, encoding="utf-8")
    return path
