"""Model-card figures of the generative and anomaly tasks (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _show(axis, image: torch.Tensor, title: str = "", cmap: str = "gray", **kwargs) -> None:
    axis.imshow(np.asarray(image.squeeze().float()), cmap=cmap, **kwargs)
    axis.set_title(title, fontsize=7)
    axis.axis("off")


def image_rows(rows: list[tuple[str, torch.Tensor]], path: Path, per_row: int = 10) -> Path:
    """One row of up to ``per_row`` images (N, 1, H, W in [-1, 1]) per (title, images) pair,
    e.g. real digits above generated ones."""
    figure, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 0.9, len(rows) * 1.05), squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(per_row):
            axis = axes[r][c]
            if c < len(images):
                _show(axis, images[c], vmin=-1, vmax=1)
            else:
                axis.axis("off")
        axes[r][0].set_title(title, fontsize=8, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def attention_maps(image: torch.Tensor, attention: torch.Tensor, queries: list[tuple[int, int]], path: Path,
                   layer: str = "") -> Path:
    """Where one query pixel attends, for a few query pixels: ``attention`` is (N, N) over the
    positions of a square feature map; ``queries`` are (row, col) on that map."""
    side = int(round(attention.shape[0] ** 0.5))
    scale = image.shape[-1] / side
    figure, axes = plt.subplots(1, len(queries) + 1, figsize=(2.0 * (len(queries) + 1), 2.2))
    _show(axes[0], image, "generated image", vmin=-1, vmax=1)
    for axis, (row, col) in zip(axes[1:], queries):
        weights = attention[row * side + col].view(side, side)
        _show(axis, weights, f"attention of ({row},{col})", cmap="viridis")
        axis.plot([col], [row], marker="x", color="red", markersize=6)
    for row, col in queries:
        axes[0].plot([(col + 0.5) * scale - 0.5], [(row + 0.5) * scale - 0.5], marker="x", color="red", markersize=6)
    figure.suptitle(f"SAGAN self-attention {layer}".strip(), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def score_histogram(scores: dict[str, np.ndarray], threshold: float, path: Path, title: str) -> Path:
    """Histograms of anomaly scores per group (e.g. normal vs anomalous) with the threshold."""
    figure, axis = plt.subplots(figsize=(6, 3.2))
    values = np.concatenate(list(scores.values()))
    bins = np.linspace(values.min(), values.max(), 40)
    for name, group in scores.items():
        axis.hist(group, bins=bins, alpha=0.55, density=True, label=f"{name} (n={len(group)})")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.1f}")
    axis.set_xlabel("anomaly score")
    axis.set_ylabel("density")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def residual_examples(images: torch.Tensor, reconstructions: torch.Tensor, scores: np.ndarray,
                      titles: list[str], path: Path) -> Path:
    """Per example: the input, the generator's reconstruction and the residual |x - G(z)|."""
    figure, axes = plt.subplots(3, len(images), figsize=(len(images) * 1.0, 3.4), squeeze=False)
    for c in range(len(images)):
        _show(axes[0][c], images[c], f"{titles[c]}\n{scores[c]:.0f}", vmin=-1, vmax=1)
        _show(axes[1][c], reconstructions[c], vmin=-1, vmax=1)
        _show(axes[2][c], (images[c] - reconstructions[c]).abs(), cmap="magma", vmin=0, vmax=2)
    for r, label in enumerate(("input (score)", "G(z)", "|x - G(z)|")):
        axes[r][0].text(-0.15, 0.5, label, transform=axes[r][0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
