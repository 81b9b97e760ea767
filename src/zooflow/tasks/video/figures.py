"""The video card's figure: sampled frames of validation clips with their true and predicted labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the headless backend is chosen
import numpy as np  # noqa: E402

MAX_FRAMES_SHOWN = 6  # frames per clip row: an even spread of the sampled ones


def sampled_frames_figure(clips: list[np.ndarray], true: list[str], predicted: list[str], confidence: list[float],
                          path: Path) -> Path:
    """One row per clip (``[N, H, W, 3]`` uint8, the frames the model sampled, in order): an even
    spread of at most ``MAX_FRAMES_SHOWN`` of them, left to right, titled with the predicted label
    (confidence) and the true one; red when wrong."""
    columns = min(MAX_FRAMES_SHOWN, max(len(clip) for clip in clips))
    figure, axes = plt.subplots(len(clips), columns, figsize=(1.6 * columns, 1.9 * len(clips)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row, (clip, truth, guess, p) in enumerate(zip(clips, true, predicted, confidence)):
        shown = np.linspace(0, len(clip) - 1, num=min(columns, len(clip))).round().astype(int)
        for column, index in enumerate(shown):
            axes[row, column].imshow(clip[index])
            axes[row, column].set_title(f"frame {index + 1}/{len(clip)}", fontsize=7)
        axes[row, 0].text(-0.1, 0.5, f"{guess} ({p:.2f})\ntrue: {truth}", transform=axes[row, 0].transAxes,
                          ha="right", va="center", fontsize=8, color="green" if guess == truth else "red")
    figure.suptitle("Validation clips: the sampled frames in order; predicted (confidence) and true class",
                    fontsize=9)
    figure.tight_layout(rect=(0.08, 0, 1, 0.97))
    figure.savefig(path, dpi=72)
    plt.close(figure)
    # Photographic frames make a large PNG, and the card embeds its figures (base64) where
    # Prefect refuses events over about 1 MB: 256 adaptive colours keep it a few hundred kB.
    from PIL import Image

    with Image.open(path) as image:
        quantised = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    quantised.save(path, optimize=True)
    return path
