"""Chapter 3's demo data: a small semantic segmentation set written in the Pascal VOC layout.

The scenes are the detection demo's (``zooflow.data.scenes``: real LFW faces and MNIST digits
pasted on crops of scikit-image's photographs, all shipped inside installed packages), drawn
from a seed of their own, so the set is built offline and the same on every machine. Because
every object is pasted, its mask is exact, taken from the pasted pixels themselves:

- a digit is its ink, written bold: each MNIST digit's strokes are thickened by one source pixel
  on each side (a 3x3 grey dilation of the 28x28 digit) before it is scaled and pasted, so a
  stroke is about twice MNIST's width (6-20 image pixels). Thin strokes would make IoU a
  measure of the 255 band and the upsampling's blur more than of the model; the mask is still
  the pasted ink itself. A digit is the pixels where the digit's opacity exceeds ``scenes.INK_ALPHA`` (its
  holes and faint anti-aliased fringe are background);
- a face is the whole pasted square: the LFW crop is pasted opaque, so every one of its pixels is
  the face's (an ellipse inside it would call some pasted pixels background);
- a later object covers an earlier one where its own pixels are;
- a band of ``IGNORE`` (255) ``BORDER`` pixels wide on each side of every boundary between two
  labels, as VOC draws around its objects: the pixels whose class a careful annotator could not
  swear to (the bicubic fringe of a digit's stroke, the seam of a face).

Masks are palette PNGs in VOC's colour map, so any VOC viewer shows them in VOC's colours, and
torchvision's ``VOCSegmentation`` reads the folder as it reads VOC2012.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from zooflow.data import scenes
from zooflow.data.demo import DEMO_SEED
from zooflow.data.imagefolder import write_classes
from zooflow.tasks.segmentation.voc import IGNORE, MASKS, SPLIT_FOLDER, mask_image

CLASSES = ("background", *scenes.OBJECT_CLASSES)  # a mask's value is the class's index here
SPLITS = (("train", 320), ("val", 96))  # ids are numbered in this order: train first
BORDER = 1  # IGNORE pixels on each side of a boundary: a 2-pixel band, VOC's is about 5
CHAPTER = 3  # mixed into the seed: these scenes are not the detection set's
BOLD = 1  # source pixels added to each side of a digit's strokes

ATTRIBUTION = """\
# Demo data: faces and digits (semantic segmentation, Pascal VOC layout)

Built by `zooflow data demo` (`zooflow.tasks.segmentation.demo_data.build_segmentation`),
seeded, so the files are the same on every machine. The layout is Pascal VOC 2012's, under
`VOCdevkit/VOC2012/`: `JPEGImages/*.jpg`, `SegmentationClass/*.png` (palette PNGs in VOC's
colour map whose pixel values are class ids) and `ImageSets/Segmentation/train.txt`, `val.txt`,
`trainval.txt`; `classes.txt` declares the class set, value 0 first:

{classes}

Each image is a random crop, at a random scale, of one of scikit-image's sample photographs,
resized to a width and a height drawn between {side_lo} and {side_hi} pixels. On it lie 1 to
{max_objects} objects, squares of {obj_lo} to {obj_hi} pixels that overlap little; their masks come from
the pasted pixels:

- `face`: a 25x25 face crop of LFW, upscaled (bicubic) and pasted opaque, in grey; its mask is
  the pasted square.
- `zero`, `one`, `two`, `three`: a real MNIST digit written bold (its strokes thickened by a 3x3
  grey dilation of the 28x28 digit), upscaled (bicubic) and pasted as ink (dark ink on bright
  backgrounds, light ink on dark ones); its mask is the ink whose opacity exceeds {ink_alpha}.

An object pasted later covers the earlier ones. A band {band} pixels wide along every boundary
between two labels has the value 255, "ignore" (VOC's object border): losses and metrics skip
it. Train and val images use different faces and digits (the first {share:.0%} of each class's
sources are train's), so validation measures generalisation.

| split | images | {header} |
|---|---|{rule}
{rows}

Pixels of each value, in all images of a split:

| split | {pixel_header} | ignore (255) |
|---|{pixel_rule}---|
{pixel_rows}

""" + scenes.SOURCES


def bold(digits: np.ndarray, reach: int = BOLD) -> np.ndarray:
    """Digits (N x 28 x 28 uint8) with thicker strokes: each pixel the brightest within ``reach``
    pixels (a (2 reach + 1)-square grey dilation; the patch's edge is no ink)."""
    count, height, width = digits.shape
    padded = np.pad(digits, ((0, 0), (reach, reach), (reach, reach)))
    thick = digits.copy()
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            np.maximum(thick, padded[:, dy:dy + height, dx:dx + width], out=thick)
    return thick


def _labels(objects: list[scenes.Pasted], placed: list[np.ndarray],
            image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The class of every pixel of ``image`` (0 where no object's pixels are) and which object
    it belongs to (-1 for none), later objects over earlier ones."""
    labels = np.zeros((image.height, image.width), dtype=np.uint8)
    owner = np.full(labels.shape, -1, dtype=np.int64)
    for number, (obj, alpha) in enumerate(zip(objects, placed)):
        pixels = alpha > scenes.INK_ALPHA
        labels[pixels] = CLASSES.index(obj.name)
        owner[pixels] = number
    return labels, owner


def with_border(labels: np.ndarray, width: int = BORDER) -> np.ndarray:
    """``labels`` with ``IGNORE`` on every pixel that has a pixel of another label within
    ``width`` pixels (its (2 width + 1)-square neighbourhood): a band ``2 width`` wide along each
    boundary. The image's own edge is no boundary."""
    height, wide = labels.shape
    padded = np.pad(labels, width, mode="edge")
    boundary = np.zeros(labels.shape, dtype=bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            boundary |= padded[width + dy:width + dy + height, width + dx:width + dx + wide] != labels
    marked = labels.copy()
    marked[boundary] = IGNORE
    return marked


def _scene(rng: np.random.Generator, photos: list[Image.Image],
           pools: dict[str, np.ndarray]) -> tuple[Image.Image, np.ndarray, list[str]]:
    """One image, its mask and the classes of the objects that kept labelled pixels, drawn
    again (bounded) until at least one object did."""
    for _ in range(scenes.LAYOUT_TRIES):
        backdrop = scenes.background(rng, photos)
        objects = scenes.layout(rng, pools, backdrop.width, backdrop.height)
        image, placed = scenes.paste(rng, backdrop, objects)
        labels, owner = _labels(objects, placed, image)
        mask = with_border(labels)
        kept = sorted(set(owner[(mask != IGNORE) & (owner >= 0)].tolist()))
        if kept:
            break
    return image, mask, [objects[number].name for number in kept]


def build_segmentation(folder: Path, splits: tuple[tuple[str, int], ...] = SPLITS) -> dict[str, int]:
    """Write the faces-and-digits segmentation set in the Pascal VOC layout into ``folder``
    (``folder/VOCdevkit/VOC2012``), ``splits`` giving each split's number of images; the number
    of objects per ``split/class``."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    root = folder / "VOCdevkit" / "VOC2012"
    for part in ("JPEGImages", MASKS, SPLIT_FOLDER):
        (root / part).mkdir(parents=True)
    rng = np.random.default_rng([DEMO_SEED, CHAPTER])
    photos, sources = scenes.photos(), scenes.sources()
    counts = {f"{split}/{name}": 0 for split, _ in splits for name in CLASSES[1:]}
    pixels = {split: np.zeros(256, dtype=np.int64) for split, _ in splits}
    ids: dict[str, list[str]] = {}
    number = 0
    for split, size in splits:
        pools = {name: sources[name][split] if name == "face" else bold(sources[name][split])
                 for name in CLASSES[1:]}
        ids[split] = []
        for _ in range(size):
            image_id = f"demo_{number:05d}"
            number += 1
            image, mask, kept = _scene(rng, photos, pools)
            image.save(root / "JPEGImages" / f"{image_id}.jpg", format="JPEG", quality=scenes.JPEG_QUALITY)
            mask_image(mask).save(root / MASKS / f"{image_id}.png", format="PNG")
            for name in kept:
                counts[f"{split}/{name}"] += 1
            pixels[split] += np.bincount(mask.ravel(), minlength=256)
            ids[split].append(image_id)
    ids["trainval"] = [image_id for split, _ in splits for image_id in ids[split]]  # VOC ships it too
    for split, names in ids.items():
        (root / SPLIT_FOLDER / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    write_classes(root, list(CLASSES))
    (folder / "README.md").write_text(_readme(splits, counts, pixels))
    return counts


def _readme(splits: tuple[tuple[str, int], ...], counts: dict[str, int], pixels: dict[str, np.ndarray]) -> str:
    """The attribution README, with the class set, object counts and pixel shares filled in."""
    objects = CLASSES[1:]
    rows = [f"| {split} | {size} | " + " | ".join(str(counts[f'{split}/{name}']) for name in objects) + " |"
            for split, size in splits]
    shares = []
    for split, _ in splits:
        total = max(int(pixels[split].sum()), 1)
        values = [*range(len(CLASSES)), IGNORE]
        shares.append(f"| {split} | " + " | ".join(f"{pixels[split][value] / total:.1%}" for value in values) + " |")
    return ATTRIBUTION.format(
        classes=", ".join(f"{value} `{name}`" for value, name in enumerate(CLASSES)), side_lo=scenes.IMAGE_SIDES[0],
        side_hi=scenes.IMAGE_SIDES[1], max_objects=scenes.MAX_OBJECTS, obj_lo=scenes.OBJECT_SIDES[0],
        obj_hi=scenes.OBJECT_SIDES[1], ink_alpha=scenes.INK_ALPHA, band=2 * BORDER, share=scenes.TRAIN_SOURCE_SHARE,
        header=" | ".join(f"{name} objects" for name in objects), rule="---|" * len(objects), rows="\n".join(rows),
        pixel_header=" | ".join(f"{value} {name}" for value, name in enumerate(CLASSES)),
        pixel_rule="---|" * len(CLASSES), pixel_rows="\n".join(shares), photos=scenes.photo_names())
