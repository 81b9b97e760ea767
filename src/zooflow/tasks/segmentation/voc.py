"""The Pascal VOC segmentation layout: reading it, describing it for validation, serving it to training.

The task's data folder holds exactly one ``VOCdevkit/VOC<year>/`` with:

- ``JPEGImages/<id>.jpg`` (``.jpeg``/``.png`` accepted too),
- ``SegmentationClass/<id>.png``: the image's class mask, the same size as the image,
- ``ImageSets/Segmentation/train.txt`` and ``val.txt``: the image ids of each split, one per line,
- optionally ``classes.txt``: the class set, one per line, the class of pixel value 0 first
  (absent: VOC's 21, ``background`` then the 20 object classes).

A mask is a PNG whose pixel values are class ids: a palette ("P") PNG as VOC ships, whose
indices are the ids (the colours are only for viewing), or a grey ("L") PNG. The value
``IGNORE`` (255) marks pixels that no class is claimed for, VOC's border around every object and
its unlabellable regions: loss and metrics skip them, and nothing here turns them into
background. Any other value that is not a class id is an error. A colour (RGB) mask, a JPEG mask
(lossy: its values are not ids) or a 16-bit one is refused, never guessed.

``manifest`` never raises for bad data: one row per listed image and split, a row per file in no
split and per problem of a split list; each problem fails exactly one flag, so validation names
it once: a missing mask is ``has_mask``, a missing image is ``has_image`` (``decodes`` stays
True), an image that does not decode is ``decodes`` and a mask that does not ``mask_decodes``
(``size_matches`` stays True), a mask that is not a P/L PNG is ``mask_mode_ok`` (its values are
not read), values that are neither class ids nor 255 are ``values_ok``, and a file in no split is
``listed`` only (it is not read at all).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from zooflow.data import images, voc_layout
from zooflow.data.images import MAX_SIDE
from zooflow.data.voc_layout import IMAGES, SPLITS, VOC_CLASSES, Scan, find_image
from zooflow.errors import InputRejected

MASKS = "SegmentationClass"
MASK_SUFFIX = ".png"
SPLIT_FOLDER = "ImageSets/Segmentation"
SEGMENTATION_CLASSES: tuple[str, ...] = ("background", *VOC_CLASSES)  # pixel value = index
IGNORE = 255  # VOC's "no class" value: object borders and unlabellable pixels
MASK_MODES = ("P", "L")  # palette indices or grey values, both 8-bit class ids


def voc_palette() -> list[int]:
    """VOC's colour map, 256 RGB triples flattened (Pillow's ``putpalette`` order): the bits of a
    value are dealt out, lowest first, to red, green and blue, filling each colour from its top
    bit down, so 1 is (128, 0, 0), 2 (0, 128, 0), 15 (192, 128, 128) and 255 (224, 224, 192)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for bit in range(7, -1, -1):  # 8 rounds of three bits fill each colour from the top bit
            red |= (value & 1) << bit
            green |= ((value >> 1) & 1) << bit
            blue |= ((value >> 2) & 1) << bit
            value >>= 3
        palette += [red, green, blue]
    return palette


def mask_image(values: np.ndarray) -> Image.Image:
    """An HxW uint8 array of class ids (and ``IGNORE``) as a palette image in VOC's colours,
    ready to save as VOC's ``SegmentationClass/<id>.png``."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
    image.putpalette(voc_palette())
    return image


class MaskError(InputRejected):
    """A mask, its image or a split list that cannot be used; the message names the file (and
    line) and what is wrong."""


LAYOUT = voc_layout.Layout(task="segmentation", labels=MASKS, label_suffix=MASK_SUFFIX, label_kind="mask",
                           labels_hold="their class masks", split_folder=SPLIT_FOLDER,
                           default_classes=SEGMENTATION_CLASSES,
                           default_source="the 21 VOC classes (background first)", error=MaskError)

voc_root = LAYOUT.voc_root
read_classes = LAYOUT.read_classes
read_split = LAYOUT.read_split


# -- one mask -----------------------------------------------------------------------------------------

def _value_text(values) -> str:
    return " ".join(str(int(value)) for value in values)


def inspect_mask(path: Path, num_classes: int, max_side: int = MAX_SIDE) -> dict:
    """Decode one mask file fully (a plain file: links are refused) and judge it against
    ``num_classes`` class ids; never raises. The facts: its size and mode, ``mask_decodes``,
    ``mask_mode_ok``, ``values_ok``, the pixels per value present (``class_pixels``, "value:count"),
    the values that are neither ids nor ``IGNORE`` (``bad_values``), ``ignore_share``, ``values``
    (the HxW uint8 array, or None) and ``problem`` (what is wrong, without the path; "" if nothing)."""
    data, read = voc_layout.read_file(path)
    facts = {"mask_width": 0, "mask_height": 0, "mask_mode": "", "mask_decodes": False, "mask_mode_ok": True,
             "values_ok": True, "class_pixels": "", "bad_values": "", "ignore_share": 0.0, "values": None,
             "problem": read["problem"]}
    if data is None:
        return facts
    try:
        mask, file_format = images.decode_stored(data, max_side)
    except images.ImageRejected as error:
        facts["problem"] = str(error).removeprefix("image bytes: ")
        return facts
    except Exception as error:  # noqa: BLE001 - a decoder failing on user bytes is a bad row, not a crash
        facts["problem"] = f"cannot decode: {type(error).__name__}: {error}"
        return facts
    facts.update(mask_width=mask.width, mask_height=mask.height, mask_mode=mask.mode, mask_decodes=True)
    if file_format != "PNG" or mask.mode not in MASK_MODES:
        facts["mask_mode_ok"] = False
        facts["problem"] = (f"a {file_format or 'unknown-format'} image of mode {mask.mode}, not a palette (P) or "
                            "grey (L) PNG whose pixel values are class ids (a mask saved as colours, as a JPEG or "
                            "in 16 bits must be converted to class ids first)")
        return facts
    values = np.array(mask, dtype=np.uint8)  # a writable copy: torch takes it as it is
    counts = np.bincount(values.ravel(), minlength=256)
    present = np.flatnonzero(counts)
    bad = [value for value in present if value >= num_classes and value != IGNORE]
    facts.update(values=values, class_pixels=" ".join(f"{value}:{counts[value]}" for value in present),
                 bad_values=_value_text(bad), ignore_share=float(counts[IGNORE]) / values.size, values_ok=not bad)
    if bad:
        shown = _value_text(bad[:10]) + (" ..." if len(bad) > 10 else "")
        facts["problem"] = (f"holds the value(s) {shown} ({int(counts[bad].sum())} pixels), which are neither class "
                            f"ids (0-{num_classes - 1}) nor {IGNORE} (ignore)")
    return facts


def read_mask(path: Path, num_classes: int, max_side: int = MAX_SIDE) -> np.ndarray:
    """One mask as an HxW uint8 array of class ids and ``IGNORE``; a ``MaskError`` naming the
    file when it cannot be read, is not a P/L PNG or holds another value."""
    facts = inspect_mask(path, num_classes, max_side)
    if facts["problem"]:
        raise MaskError(f"{path}: {facts['problem']}")
    return facts["values"]


# -- the manifest --------------------------------------------------------------------------------------

COLUMNS = {
    "path": "str", "image_id": "str", "split": "str", "image": "str", "mask": "str",
    "width": "int64", "height": "int64", "mask_width": "int64", "mask_height": "int64", "mask_mode": "str",
    "class_pixels": "str", "bad_values": "str", "ignore_share": "float64",
    "listed": "bool", "has_image": "bool", "has_mask": "bool", "decodes": "bool", "mask_decodes": "bool",
    "mask_mode_ok": "bool", "size_matches": "bool", "values_ok": "bool", "in_other_split": "bool",
    "error": "str", "sha256": "str", "bytes": "int64", "converted": "str",
}
FLAGS = ("listed", "has_image", "has_mask", "decodes", "mask_decodes", "mask_mode_ok", "size_matches", "values_ok")
MASK_COLUMNS = ("mask_width", "mask_height", "mask_mode", "mask_decodes", "mask_mode_ok", "values_ok",
                "class_pixels", "bad_values", "ignore_share")


def _blank_row() -> dict:
    """A row with every flag passing and nothing known; the callers fill in what they find."""
    return voc_layout.blank_row(COLUMNS, FLAGS)


def _read_listed(scan: Scan, image_id: str, num_classes: int, max_side: int) -> dict:
    """Everything about one listed id that does not depend on its split: its image and mask
    files and their facts (each file read once)."""
    image_name = find_image(set(scan.image_entries), image_id)
    mask_name = f"{image_id}{MASK_SUFFIX}"
    facts = {"image_path": scan.root / IMAGES / (image_name or f"{image_id}.jpg"), "has_image": image_name is not None,
             "mask_path": scan.root / MASKS / mask_name, "has_mask": mask_name in scan.label_entries,
             "image": None, "mask": None}
    if facts["has_image"]:
        facts["image"] = voc_layout.inspect_image(facts["image_path"], max_side)
    if facts["has_mask"]:
        facts["mask"] = inspect_mask(facts["mask_path"], num_classes, max_side)
        facts["mask"].pop("values")  # the manifest keeps counts, not pixels
    return facts


def _listed_row(scan: Scan, split: str, image_id: str, facts: dict, leaks: list[str]) -> dict:
    """The row of one listed id in one split, and every problem it has in ``error``."""
    image, mask = facts["image"] or {}, facts["mask"] or {}
    path = facts["mask_path"] if facts["has_mask"] else facts["image_path"]
    row = {**_blank_row(), "path": scan.relative(path), "image_id": image_id, "split": split,
           "image": scan.relative(facts["image_path"]), "mask": scan.relative(facts["mask_path"]),
           "has_image": facts["has_image"], "has_mask": facts["has_mask"], "in_other_split": bool(leaks),
           **{column: mask[column] for column in MASK_COLUMNS if column in mask},
           **{column: image[column] for column in ("width", "height", "sha256", "bytes", "converted") if image}}
    listed_in = f"listed in {SPLIT_FOLDER}/{split}.txt"
    problems = []
    if not facts["has_image"]:
        problems.append(f"{listed_in} but {IMAGES}/{image_id}.jpg is missing")
    elif image["problem"]:
        row["decodes"] = False
        problems.append(f"{IMAGES}/{facts['image_path'].name}: {image['problem']}")
    if not facts["has_mask"]:
        problems.append(f"{listed_in} but {MASKS}/{image_id}{MASK_SUFFIX} is missing")
    elif mask["problem"]:
        problems.append(f"{MASKS}/{facts['mask_path'].name}: {mask['problem']}")
    if row["decodes"] and facts["has_image"] and row["mask_decodes"] and facts["has_mask"]:
        row["size_matches"] = (row["mask_width"], row["mask_height"]) == (row["width"], row["height"])
        if not row["size_matches"]:
            problems.append(f"the mask is {row['mask_width']}x{row['mask_height']} but the image is "
                            f"{row['width']}x{row['height']}")
    row["error"] = "; ".join(problems + leaks)
    return row


def manifest(folder: Path, classes: list[str], relative_to: Path | None = None,
             max_side: int = MAX_SIDE) -> pd.DataFrame:
    """One row per listed image and split, plus a row for each file in no split and each problem
    of a split list; the columns are ``COLUMNS`` (see the module docstring for the flags). Mask
    values are judged against the ids of ``classes`` (0 to len - 1) and ``IGNORE``. Paths are
    relative to ``relative_to`` (default: ``folder``). Never raises for bad data, only for a
    folder that is not a VOC dataset at all (``voc_root``)."""
    scan = LAYOUT.scan(folder, relative_to)
    listed = {image_id: _read_listed(scan, image_id, len(classes), max_side) for image_id in scan.listed_ids()}
    leaks = voc_layout.leaks(scan, listed)
    rows = [_listed_row(scan, split, image_id, listed[image_id], leaks.get(image_id, []))
            for split in SPLITS for image_id in scan.split_ids[split]]
    used = {IMAGES: {facts["image_path"].name for facts in listed.values() if facts["has_image"]},
            MASKS: {facts["mask_path"].name for facts in listed.values() if facts["has_mask"]}}
    rows += voc_layout.unlisted_rows(scan, used, _blank_row) + voc_layout.split_problem_rows(scan, _blank_row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype(COLUMNS)


def expectations(classes: list[str]) -> list:
    """The Great Expectations suite of a segmentation manifest: every flag holds on every row,
    nothing leaks between splits, and both splits have rows. (``classes`` is what the
    manifest's ``values_ok`` was computed against.)"""
    import great_expectations as gx  # slow import; serving a model never needs it

    must_hold = [gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[True]) for column in FLAGS]
    return must_hold + [
        gx.expectations.ExpectColumnValuesToBeInSet(column="in_other_split", value_set=[False]),
        gx.expectations.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(SPLITS))]


# -- the dataset ----------------------------------------------------------------------------------------

class VOCSegmentation(voc_layout.SplitFiles, Dataset):
    """One split of a VOC folder as (image, mask) pairs: the image a ``tv_tensors.Image`` (uint8,
    3xHxW), the mask a ``tv_tensors.Mask`` (int64, HxW) of class indices into ``classes``, with
    ``IGNORE`` (255) kept as it is. ``transform(image, mask)`` follows the torchvision transforms
    v2 convention (geometric transforms move the mask with the image; pad and rotate fill it with
    0 = the first class unless told ``fill={tv_tensors.Mask: IGNORE}``)."""

    def __init__(self, folder: Path, split: str, classes: list[str], transform=None, max_side: int = MAX_SIDE):
        super().__init__(folder, split, LAYOUT)
        self.classes = list(classes)
        self.transform = transform
        self.max_side = max_side

    def image_path(self, index: int) -> Path:
        """The image file of the ``index``-th id (``<id>.jpg``, .jpeg or .png)."""
        return self.find_image_path(index)

    def mask_path(self, index: int) -> Path:
        """The mask file of the ``index``-th id."""
        return self.label_path(index)

    def mask(self, index: int) -> np.ndarray:
        """The ``index``-th mask as an HxW uint8 array (class ids and ``IGNORE``)."""
        return read_mask(self.mask_path(index), len(self.classes), self.max_side)

    def __getitem__(self, index: int):
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional

        image = tv_tensors.Image(functional.pil_to_tensor(images.open_rgb(self.image_path(index), self.max_side)))
        mask = tv_tensors.Mask(torch.from_numpy(self.mask(index)).to(torch.int64))
        if tuple(mask.shape) != tuple(image.shape[-2:]):
            raise MaskError(f"{self.mask_path(index)}: the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                            f"{image.shape[-1]}x{image.shape[-2]}")
        if self.transform is not None:
            return self.transform(image, mask)
        return image, mask
