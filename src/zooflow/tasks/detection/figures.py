"""The detection card's figures: predictions next to the ground truth, precision-recall curves,
per-class AP bars, and an HTML table of AP against the mean-box baseline.

Class names are user data (XML tags of the dataset): in the figures they are shown as plain text
(no matplotlib math), in HTML they are escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; there is no display on training machines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from zooflow.evaluation.figure_files import save_compact_png
from zooflow.tasks.detection.metrics import ClassCurve, mean_ap

_PALETTE = plt.get_cmap("tab20")


def _colour(class_index: int):
    """A class's fixed colour, the same in every figure: tab20's ten strong colours first, then
    their ten light partners, so small label sets stay easy to tell apart."""
    index = int(class_index) % _PALETTE.N
    return _PALETTE(2 * index if index < 10 else 2 * (index - 10) + 1)


def _ink(colour) -> str:
    """Black or white, whichever reads better on ``colour``."""
    red, green, blue = colour[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.6 else "white"


def _plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: an unescaped ``$`` pair would start math mode,
    and a name like ``$\\frac$`` would even make the drawing fail."""
    return str(text).replace("$", r"\$")


def _name(classes: Sequence[str], index: int) -> str:
    """The class name, or ``#index`` for an index outside ``classes``."""
    return classes[index] if 0 <= index < len(classes) else f"#{index}"


def _rows(values) -> np.ndarray:
    """A tensor or array as a NumPy array (CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _draw_boxes(axis, boxes, labels, captions: Sequence[str], dashed: Sequence[bool]) -> None:
    """Outline each box in its class's colour with a caption inside its top-left corner (inside:
    a box touching the image's top edge would lose a caption drawn above it)."""
    for box, label, caption, is_dashed in zip(boxes.reshape(-1, 4), labels.reshape(-1), captions, dashed):
        x1, y1, x2, y2 = (float(v) for v in box)
        colour = _colour(label)
        axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5,
                                 linestyle="--" if is_dashed else "-"))
        axis.text(x1, y1, caption, fontsize=7, color=_ink(colour), va="top", ha="left", clip_on=True, parse_math=False,
                  bbox=dict(facecolor=colour, alpha=0.8, pad=1, edgecolor="none"))



def prediction_pairs(images: Sequence[np.ndarray], truths: Sequence[dict], detections: Sequence[dict],
                     classes: Sequence[str], path: Path, min_score: float = 0.3, max_images: int = 8) -> Path:
    """One row per image (at most ``max_images``): the ground truth on the left (difficult boxes
    dashed), the detections scoring at least ``min_score`` on the right with class and score.
    A class has the same colour on both sides."""
    path = Path(path)
    count = min(len(images), len(truths), len(detections), max_images)
    rows = max(1, count)
    figure, axes = plt.subplots(rows, 2, figsize=(6.4, 2.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row in range(count):
        image, truth, detection = images[row], truths[row], detections[row]
        left, right = axes[row]
        for axis in (left, right):
            axis.imshow(image)

        labels = _rows(truth["labels"]).astype(np.int64).reshape(-1)
        difficult = (_rows(truth["difficult"]).astype(bool).reshape(-1) if "difficult" in truth
                     else np.zeros(len(labels), dtype=bool))
        captions = [_name(classes, label) + (" (difficult)" if hard else "") for label, hard in zip(labels, difficult)]
        _draw_boxes(left, _rows(truth["boxes"]), labels, captions, difficult)
        left.set_title(f"ground truth ({len(labels)})", fontsize=8)

        scores = _rows(detection["scores"]).astype(np.float64).reshape(-1)
        shown = scores >= min_score
        labels = _rows(detection["labels"]).astype(np.int64).reshape(-1)[shown]
        captions = [f"{_name(classes, label)} {score:.2f}" for label, score in zip(labels, scores[shown])]
        _draw_boxes(right, _rows(detection["boxes"]).reshape(-1, 4)[shown], labels, captions,
                    [False] * len(labels))
        right.set_title(f"prediction ({len(labels)} with score \u2265 {min_score:.2f})", fontsize=8)
    figure.tight_layout()
    return save_compact_png(figure, path, dpi=80)


def pr_curves(curves: Sequence[ClassCurve], path: Path) -> Path:
    """Precision against recall per class (a step plot), the legend giving each class's AP.
    Classes without positives (AP NaN) are left out."""
    path = Path(path)
    figure, axes = plt.subplots(figsize=(7.5, 5))
    for index, curve in enumerate(curves):
        if np.isnan(curve.ap):
            continue
        axes.step(curve.recall, curve.precision, where="post", color=_colour(index), linewidth=1.2,
                  label=_plain(f"{curve.label} (AP {curve.ap:.2f})"))
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(f"precision-recall per class at IoU 0.5 (mAP {mean_ap(curves):.3f})")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def ap_bars(curves: Sequence[ClassCurve], path: Path) -> Path:
    """Per-class AP at IoU 0.5 as horizontal bars, best class on top; classes without positives
    are left out."""
    path = Path(path)
    scored = sorted(((curve.ap, index, curve.label) for index, curve in enumerate(curves) if not np.isnan(curve.ap)),
                    key=lambda item: item[0])
    figure, axes = plt.subplots(figsize=(6, max(2.0, 0.3 * len(scored) + 1.2)))
    positions = np.arange(len(scored))
    axes.barh(positions, [ap for ap, _, _ in scored], color=[_colour(index) for _, index, _ in scored])
    axes.set_yticks(positions, [_plain(label) for _, _, label in scored], fontsize=8)
    for position, (ap, _, _) in zip(positions, scored):
        axes.text(min(ap, 0.9) + 0.01, position, f"{ap:.2f}", va="center", fontsize=7)
    axes.set_xlim(0, 1)
    axes.set_xlabel("AP at IoU 0.5")
    axes.set_title(f"AP per class (mAP {mean_ap(curves):.3f})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _ap_cell(ap: float | None) -> str:
    """An AP for the table: three decimals, ``n/a`` for NaN (no positives), a dash when absent."""
    if ap is None:
        return "\u2013"
    return "n/a" if np.isnan(ap) else f"{ap:.3f}"


def ap_table_html(curves: Sequence[ClassCurve], baseline_curves: Sequence[ClassCurve], path: Path) -> Path:
    """A standalone HTML page (no script, no external resource) with one row per class:
    positives, the model's AP at IoU 0.5 and the mean-box baseline's, then the means."""
    path = Path(path)
    baseline = {curve.label: curve.ap for curve in baseline_curves}
    rows = [f"<tr><td>{html.escape(str(curve.label))}</td><td>{curve.positives}</td>"
            f"<td>{_ap_cell(curve.ap)}</td><td>{_ap_cell(baseline.get(curve.label))}</td></tr>" for curve in curves]
    rows.append(f"<tr class=\"mean\"><td>mean (mAP@0.5)</td><td>{sum(curve.positives for curve in curves)}</td>"
                f"<td>{_ap_cell(mean_ap(curves))}</td><td>{_ap_cell(mean_ap(baseline_curves))}</td></tr>")
    page = "\n".join([
        "<!DOCTYPE html>",
        "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>AP per class</title>",
        "<style>table{border-collapse:collapse;font-family:sans-serif;font-size:14px}"
        "td,th{border:1px solid #ccc;padding:4px 8px}td:not(:first-child){text-align:right}"
        "tr.mean td{font-weight:bold}</style></head><body>",
        "<table><thead><tr><th>class</th><th>positives</th><th>AP@0.5 model</th><th>AP@0.5 mean-box baseline</th>"
        "</tr></thead><tbody>",
        *rows,
        "</tbody></table></body></html>",
        ""])
    path.write_text(page, encoding="utf-8")
    return path
