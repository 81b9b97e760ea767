"""Import a Pascal VOC detection dataset into a task folder: only what detection uses, by the
rules of ``zooflow.data.safety`` (no links, confined paths, litter skipped and reported).

A real VOC2012 download holds far more than the detection splits (segmentation masks, action
and layout lists, per-class lists, 17,125 images of which the train/val detection lists use
11,540). The import copies the listed images and annotations byte for byte and the two split
lists, writes ``classes.txt``, and says in ``Imported.notes`` what it left out. It does not judge
the content: a listed id whose image or annotation is missing, an XML that does not parse or a
box outside its image is copied as it is (or left absent), so that validation names every
problem of the dataset at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from zooflow.data import safety
from zooflow.data.safety import ImportRejected, Imported
from zooflow.errors import InputRejected
from zooflow.tasks.detection.voc import (ANNOTATIONS, CLASSES_FILE, DEVKIT, IMAGES, SPLIT_FOLDER, SPLITS,
                                         find_image, parse_annotation, read_classes, read_split)

VOC_PARTS = (IMAGES, ANNOTATIONS, "ImageSets")
PER_CLASS_LIST = re.compile(r".+_(train|val|trainval|test)\.txt")
SHOWN = 3  # names shown in a note before "..."


def _some(names: list[str]) -> str:
    more = f" ... ({len(names)} in all)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _walk(folder: Path, root: Path) -> list[str]:
    """Refuse any link anywhere under ``folder`` (by name); the litter skipped on the way."""
    listing = safety.list_folder(folder, root)
    skipped = list(listing.skipped)
    for name in listing.folders:
        skipped += _walk(folder / name, root)
    return skipped


def _find_voc_folder(source: Path) -> tuple[Path, list[str]]:
    """The ``VOC<year>`` folder inside ``source`` (a download's top folder, ``VOCdevkit`` or the
    VOC folder itself), and notes on what sits beside it."""
    listing = safety.list_folder(source)
    if any(part in listing.folders for part in VOC_PARTS):
        voc = source
        beside: list[str] = []
    elif DEVKIT in listing.folders and not any(name.startswith("VOC") and name != DEVKIT for name in listing.folders):
        # The top folder of an extracted VOCtrainval_*.tar: descend into its VOCdevkit.
        voc, beside = _find_voc_folder(source / DEVKIT)
        others = [name for name in listing.files + listing.folders if name != DEVKIT]
        return voc, beside + ([f"left out {_some(others)} beside {DEVKIT}/"] if others else [])
    else:
        candidates = [name for name in listing.folders if name.startswith("VOC") and name != DEVKIT]
        if not candidates:
            raise ImportRejected(f"{source}: is not a Pascal VOC dataset: expected a {DEVKIT} folder holding one "
                                 f"VOC<year>/ folder, or that VOC<year>/ folder itself, with {IMAGES}/, "
                                 f"{ANNOTATIONS}/ and {SPLIT_FOLDER}/train.txt, val.txt")
        if len(candidates) > 1:
            raise ImportRejected(f"{source}: holds {len(candidates)} VOC folders ({', '.join(candidates)}); import "
                                 f"one of them by naming it, e.g. {source / candidates[0]}")
        voc = source / candidates[0]
        others = [name for name in listing.files + listing.folders if name != candidates[0]]
        beside = [f"left out {_some(others)} beside {candidates[0]}/ (not part of the dataset)"] if others else []
    if not voc.name.startswith("VOC"):
        raise ImportRejected(f"{voc}: a Pascal VOC folder is named VOC<something> (VOC2012, VOC2007, VOCmine); "
                             f"rename it, or put it inside a {DEVKIT}/ folder under such a name")
    safety.check_name(voc.name, str(voc), "folder name")
    return voc, beside


def _required(voc: Path) -> None:
    """The parts without which nothing can be imported: refused by name."""
    for part in (IMAGES, ANNOTATIONS):
        if not (voc / part).is_dir():
            raise ImportRejected(f"{voc}: has no {part}/ folder; a Pascal VOC dataset keeps its images in {IMAGES}/ "
                                 f"and their boxes in {ANNOTATIONS}/")
    for split in SPLITS:
        if not (voc / SPLIT_FOLDER / f"{split}.txt").is_file():
            raise ImportRejected(f"{voc / SPLIT_FOLDER / (split + '.txt')}: is missing; the detection splits are "
                                 f"{SPLIT_FOLDER}/train.txt and val.txt (one image id per line)")


def _left_out_parts(voc: Path) -> list[str]:
    """Notes on the parts of a VOC folder that detection does not use."""
    top = safety.list_folder(voc)
    unused = [f"{name}/" for name in top.folders if name not in VOC_PARTS]
    unused += [name for name in top.files if name != CLASSES_FILE and not safety.is_document(name)]
    image_sets = safety.list_folder(voc / "ImageSets")
    unused += [f"ImageSets/{name}/" for name in image_sets.folders if name != "Main"]
    unused += [f"ImageSets/{name}" for name in image_sets.files]
    notes = [f"left out {_some(unused)} (not used by detection)"] if unused else []
    main = safety.list_folder(voc / SPLIT_FOLDER)
    wanted = {f"{split}.txt" for split in SPLITS}
    per_class = [name for name in main.files if name not in wanted and PER_CLASS_LIST.fullmatch(name)]
    other = [name for name in main.files if name not in wanted and name not in per_class]
    other += [f"{name}/" for name in main.folders]
    if per_class:
        notes.append(f"left out the per-class lists in {SPLIT_FOLDER} ({_some(per_class)})")
    if other:
        notes.append(f"left out {_some(other)} in {SPLIT_FOLDER} (detection uses train.txt and val.txt)")
    return notes


def _image_name(voc: Path, image_id: str, image_names: set[str]) -> str | None:
    """The image file of a listed id: the one its XML's ``<filename>`` names when that is the
    id's file, else ``<id>.jpg`` (or .jpeg, .png). The XML is only peeked at here: when it
    cannot be read, validation says why."""
    filename = ""
    annotation = voc / ANNOTATIONS / f"{image_id}.xml"
    if annotation.is_file():
        try:
            filename = parse_annotation(annotation).filename
        except InputRejected:
            pass
    return find_image(image_names, image_id, filename)


def _copy_listed(voc: Path, target_voc: Path, target: Path, ids: list[str]) -> list[str]:
    """Copy the image and annotation of every listed id; notes on what was left out or absent."""
    images = safety.list_folder(voc / IMAGES)
    annotations = safety.list_folder(voc / ANNOTATIONS)
    image_names, annotation_names = set(images.files), set(annotations.files)
    used_images, used_annotations, no_image, no_annotation = set(), set(), [], []
    for image_id in ids:
        name = f"{image_id}.xml"
        if name in annotation_names:
            safety.copy_file(voc / ANNOTATIONS / name, target, target_voc / ANNOTATIONS / name)
            used_annotations.add(name)
        else:
            no_annotation.append(name)
        image = _image_name(voc, image_id, image_names)
        if image:
            safety.copy_file(voc / IMAGES / image, target, target_voc / IMAGES / image)
            used_images.add(image)
        else:
            no_image.append(f"{image_id}.jpg")
    notes = []
    for folder, listing, used in ((IMAGES, images, used_images), (ANNOTATIONS, annotations, used_annotations)):
        extra = sorted(set(listing.files) - used) + [f"{name}/" for name in listing.folders]
        if extra:
            kind = ("image" if folder == IMAGES else "annotation") + ("s" if len(extra) > 1 else "")
            notes.append(f"left out {len(extra)} {kind} in {folder}/ listed in no detection split "
                         f"({_some(extra)})")
    for folder, absent in ((IMAGES, no_image), (ANNOTATIONS, no_annotation)):
        if absent:
            notes.append(f"{len(absent)} listed id(s) have no file in {folder}/ ({_some(absent)}); validation "
                         "names them")
    return notes


def import_voc(source: Path, target: Path) -> Imported:
    """Copy the detection part of a Pascal VOC dataset (``source`` = a ``VOCdevkit`` folder with
    one ``VOC<year>`` inside, that ``VOC<year>`` folder itself, or the folder a VOC tar extracts
    to) into ``target/VOCdevkit/VOC<year>/``: the two split lists, the listed images and
    annotations, and ``classes.txt`` (the source's, checked, else the 20 VOC classes). Links
    anywhere, unsafe ids and unsafe class names are refused by name; litter is skipped and
    reported; everything else left out is said in the notes."""
    source, target = Path(source), safety.fresh_target(target)
    skipped = _walk(source, source)  # a link anywhere in what the user named is refused, used or not
    voc, notes = _find_voc_folder(source)
    _required(voc)
    classes = read_classes(voc)
    splits = {split: read_split(voc, split) for split in SPLITS}
    target_voc = safety.inside(target, target / DEVKIT / voc.name)
    for split, ids in splits.items():
        listed = target_voc / SPLIT_FOLDER / f"{split}.txt"
        safety.inside(target, listed).parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("".join(f"{image_id}\n" for image_id in ids), encoding="utf-8")
    every_id = list(dict.fromkeys(splits["train"] + splits["val"]))
    notes += _left_out_parts(voc)
    notes += _copy_listed(voc, target_voc, target, every_id)
    (target_voc / CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    for name in safety.list_folder(voc).files:
        if safety.is_document(name):
            safety.copy_file(voc / name, target, target_voc / name)
    return Imported(classes=tuple(classes), skipped=tuple(skipped), notes=tuple(notes))
