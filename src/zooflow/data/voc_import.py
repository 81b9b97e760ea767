"""Import one VOC task's part of a Pascal VOC dataset into a task folder, by the rules of
``zooflow.data.safety`` (no links, confined paths, litter skipped and reported).

A real VOC2012 download holds far more than one task uses (detection's annotations,
segmentation's masks, action and layout lists, per-class lists, 17,125 images of which the
detection lists use 11,540 and the segmentation lists 2,913). ``import_voc_layout`` copies the
images and label files of the task's two split lists byte for byte, writes the lists and
``classes.txt``, and says in ``Imported.notes`` what it left out. It does not judge the content:
a listed id whose image or label file is missing, or a label file that cannot be read, is copied
as it is (or left absent), so that validation names every problem of the dataset at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from zooflow.data import safety
from zooflow.data.safety import ImportRejected, Imported
from zooflow.data.voc_layout import CLASSES_FILE, DEVKIT, IMAGE_SETS, IMAGES, SPLITS, Layout, find_image

PER_CLASS_LIST = re.compile(r".+_(train|val|trainval|test)\.txt")

# The image file of a listed id: (the VOC folder, the id, the names in JPEGImages/) -> a name or None.
ImageName = Callable[[Path, str, set[str]], "str | None"]




def _parts(layout: Layout) -> tuple[str, str, str]:
    """The top-level folders of a VOC folder that the task reads."""
    return (IMAGES, layout.labels, IMAGE_SETS)


def _find_voc_folder(source: Path, layout: Layout) -> tuple[Path, list[str]]:
    """The ``VOC<year>`` folder inside ``source`` (a download's top folder, ``VOCdevkit`` or the
    VOC folder itself), and notes on what sits beside it."""
    listing = safety.list_folder(source)
    if any(part in listing.folders for part in _parts(layout)):
        voc = source
        beside: list[str] = []
    elif DEVKIT in listing.folders and not any(name.startswith("VOC") and name != DEVKIT for name in listing.folders):
        # The top folder of an extracted VOCtrainval_*.tar: descend into its VOCdevkit.
        voc, beside = _find_voc_folder(source / DEVKIT, layout)
        others = [name for name in listing.files + listing.folders if name != DEVKIT]
        return voc, beside + ([f"left out {safety.some_names(others)} beside {DEVKIT}/"] if others else [])
    else:
        candidates = [name for name in listing.folders if name.startswith("VOC") and name != DEVKIT]
        if not candidates:
            raise ImportRejected(f"{source}: is not a Pascal VOC dataset: expected a {DEVKIT} folder holding one "
                                 f"VOC<year>/ folder, or that VOC<year>/ folder itself, with {IMAGES}/, "
                                 f"{layout.labels}/ and {layout.split_folder}/train.txt, val.txt")
        if len(candidates) > 1:
            raise ImportRejected(f"{source}: holds {len(candidates)} VOC folders ({', '.join(candidates)}); import "
                                 f"one of them by naming it, e.g. {source / candidates[0]}")
        voc = source / candidates[0]
        others = [name for name in listing.files + listing.folders if name != candidates[0]]
        beside = [f"left out {safety.some_names(others)} beside {candidates[0]}/ (not part of the dataset)"] if others else []
    if not voc.name.startswith("VOC"):
        raise ImportRejected(f"{voc}: a Pascal VOC folder is named VOC<something> (VOC2012, VOC2007, VOCmine); "
                             f"rename it, or put it inside a {DEVKIT}/ folder under such a name")
    safety.check_name(voc.name, str(voc), "folder name")
    return voc, beside


def _required(voc: Path, layout: Layout) -> None:
    """The parts without which nothing can be imported: refused by name."""
    for part in (IMAGES, layout.labels):
        if not (voc / part).is_dir():
            raise ImportRejected(f"{voc}: has no {part}/ folder; a Pascal VOC dataset keeps its images in {IMAGES}/ "
                                 f"and {layout.labels_hold} in {layout.labels}/")
    for split in SPLITS:
        if not layout.split_file(voc, split).is_file():
            raise ImportRejected(f"{layout.split_file(voc, split)}: is missing; the {layout.task} splits are "
                                 f"{layout.split_folder}/train.txt and val.txt (one image id per line)")


def _left_out_parts(voc: Path, layout: Layout) -> list[str]:
    """Notes on the parts of a VOC folder that the task does not use."""
    top = safety.list_folder(voc)
    unused = [f"{name}/" for name in top.folders if name not in _parts(layout)]
    unused += [name for name in top.files if name != CLASSES_FILE and not safety.is_document(name)]
    image_sets = safety.list_folder(voc / IMAGE_SETS)
    own = Path(layout.split_folder).name
    unused += [f"{IMAGE_SETS}/{name}/" for name in image_sets.folders if name != own]
    unused += [f"{IMAGE_SETS}/{name}" for name in image_sets.files]
    notes = [f"left out {safety.some_names(unused)} (not used by {layout.task})"] if unused else []
    lists = safety.list_folder(voc / layout.split_folder)
    wanted = {f"{split}.txt" for split in SPLITS}
    per_class = [name for name in lists.files if name not in wanted and PER_CLASS_LIST.fullmatch(name)]
    other = [name for name in lists.files if name not in wanted and name not in per_class]
    other += [f"{name}/" for name in lists.folders]
    if per_class:
        notes.append(f"left out the per-class lists in {layout.split_folder} ({safety.some_names(per_class)})")
    if other:
        notes.append(f"left out {safety.some_names(other)} in {layout.split_folder} ({layout.task} uses train.txt and val.txt)")
    return notes


def _by_suffix(voc: Path, image_id: str, image_names: set[str]) -> str | None:
    """``<id>.jpg`` (or .jpeg, .png) when ``JPEGImages/`` holds it."""
    return find_image(image_names, image_id)


def _copy_listed(voc: Path, target_voc: Path, target: Path, ids: list[str], layout: Layout,
                 image_name: ImageName) -> list[str]:
    """Copy the image and label file of every listed id; notes on what was left out or absent."""
    images = safety.list_folder(voc / IMAGES)
    labels = safety.list_folder(voc / layout.labels)
    image_names, label_names = set(images.files), set(labels.files)
    used_images, used_labels, no_image, no_label = set(), set(), [], []
    for image_id in ids:
        name = f"{image_id}{layout.label_suffix}"
        if name in label_names:
            safety.copy_file(voc / layout.labels / name, target, target_voc / layout.labels / name)
            used_labels.add(name)
        else:
            no_label.append(name)
        image = image_name(voc, image_id, image_names)
        if image:
            safety.copy_file(voc / IMAGES / image, target, target_voc / IMAGES / image)
            used_images.add(image)
        else:
            no_image.append(f"{image_id}.jpg")
    notes = []
    for folder, listing, used in ((IMAGES, images, used_images), (layout.labels, labels, used_labels)):
        extra = sorted(set(listing.files) - used) + [f"{name}/" for name in listing.folders]
        if extra:
            kind = ("image" if folder == IMAGES else layout.label_kind) + ("s" if len(extra) > 1 else "")
            notes.append(f"left out {len(extra)} {kind} in {folder}/ listed in no {layout.task} split "
                         f"({safety.some_names(extra)})")
    for folder, absent in ((IMAGES, no_image), (layout.labels, no_label)):
        if absent:
            notes.append(f"{len(absent)} listed id(s) have no file in {folder}/ ({safety.some_names(absent)}); validation "
                         "names them")
    return notes


def import_voc_layout(source: Path, target: Path, layout: Layout, image_name: ImageName = _by_suffix) -> Imported:
    """Copy ``layout``'s part of a Pascal VOC dataset (``source`` = a ``VOCdevkit`` folder with
    one ``VOC<year>`` inside, that ``VOC<year>`` folder itself, or the folder a VOC tar extracts
    to) into ``target/VOCdevkit/VOC<year>/``: the two split lists, the listed images and label
    files, and ``classes.txt`` (the source's, checked, else the layout's default classes). Links
    anywhere, unsafe ids and unsafe class names are refused by name; litter is skipped and
    reported; everything else left out is said in the notes. ``image_name`` finds a listed id's
    image (default: ``<id>.jpg``, .jpeg or .png)."""
    source, target = Path(source), safety.fresh_target(target)
    skipped = safety.walk_refusing_links(source, source)  # a link anywhere in what the user named is refused, used or not
    voc, notes = _find_voc_folder(source, layout)
    _required(voc, layout)
    classes = layout.read_classes(voc)
    splits = {split: layout.read_split(voc, split) for split in SPLITS}
    target_voc = safety.inside(target, target / DEVKIT / voc.name)
    for split, ids in splits.items():
        listed = layout.split_file(target_voc, split)
        safety.inside(target, listed).parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("".join(f"{image_id}\n" for image_id in ids), encoding="utf-8")
    every_id = list(dict.fromkeys(splits["train"] + splits["val"]))
    notes += _left_out_parts(voc, layout)
    notes += _copy_listed(voc, target_voc, target, every_id, layout, image_name)
    (target_voc / CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    for name in safety.list_folder(voc).files:
        if safety.is_document(name):
            safety.copy_file(voc / name, target, target_voc / name)
    return Imported(classes=tuple(classes), skipped=tuple(skipped), notes=tuple(notes))
