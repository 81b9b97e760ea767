"""``zooflow data import video <folder>``: a Kinetics-style folder into ``data/video``.

The source is ``train/<class>/<clip>`` and ``val/<class>/<clip>``, where a clip is a video file or
a frame folder (``<clip>/image_00001.jpg`` ...), with an optional ``classes.txt`` declaring the
class order (a pretrained network's output order); without one, the classes are ``train/``'s
folders, sorted - or in Kinetics-400's label order when every folder is named after a Kinetics
class (``kinetics.py``), so a network trained on Kinetics predicts in the same order. A Kinetics
name that is not a safe name (``hurling (sport)``) is taken in its safe spelling
(``hurling sport``), and the import says so. The trust rules of ``data/safety.py`` hold: no link is followed (one is an
error naming it), class names must be safe names, every class needs clips in both splits, and
nothing is written outside the staging target. Operating-system litter is skipped and reported.
What a clip holds (does it decode, is it whole, has it enough frames) is validation's to judge
afterwards, on the staged copy: every file is copied.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from zooflow.data import safety
from zooflow.data.imagefolder import CLASSES_FILE, SPLITS
from zooflow.data.importer import class_split_top, declared_classes, finish_class_folders, split_folder
from zooflow.data.safety import ImportRejected, Imported
from zooflow.tasks.video import kinetics
from zooflow.tasks.video.layout import LAYOUT


def _class_name(folder: Path, name: str, renamed: dict[str, str]) -> str:
    """The safe class name of a class folder: its own name, or a Kinetics-400 class's safe
    spelling (recorded in ``renamed``); otherwise the refusal naming it."""
    try:
        return safety.check_name(name, str(folder / name), "class name")
    except ImportRejected:
        spelling = kinetics.kinetics_name(name)
        if spelling is None:
            raise
        renamed[name] = spelling
        return spelling


def import_videos(source: Path, target: Path) -> Imported:
    """Copy a Kinetics-style video dataset into ``target`` (see the module docstring); the
    classes declared and the litter skipped."""
    source, target = Path(source), safety.fresh_target(target)
    top = class_split_top(source, "a video dataset", f"{LAYOUT}; a folder of class folders, as the book's "
                                                     f"kinetics_videos/, goes in train/ and val/")
    skipped = list(top.skipped)
    found: dict[str, set[str]] = {}
    renamed: dict[str, str] = {}
    for split in SPLITS:
        listing = split_folder(source, split, "clips")
        skipped += listing.skipped
        labels = {folder: _class_name(source / split, folder, renamed) for folder in listing.folders}
        twice = sorted(label for label, count in Counter(labels.values()).items() if count > 1)
        if twice:
            raise ImportRejected(f"{source / split}: two class folders name the class {twice[0]!r} "
                                 f"({', '.join(sorted(f for f, label in labels.items() if label == twice[0]))})")
        found[split] = set(labels.values())
        for folder, label in sorted(labels.items()):
            clips = safety.list_folder(source / split / folder, source)
            skipped += clips.skipped
            for name in clips.files:
                safety.copy_file(source / split / folder / name, target, target / split / label / name)
            for name in clips.folders:
                skipped += safety.copy_flat_folder(source, Path(split, folder, name), target, Path(split, label, name),
                                                   "frame", "image_00001.jpg, image_00002.jpg, ...")
            (target / split / label).mkdir(parents=True, exist_ok=True)
    safety.require_every_split(found, source)
    classes = declared_classes(source, top, found,
                               kinetics.kinetics_order(sorted(found["train"])) or sorted(found["train"]))
    notes = [f"class folder {folder!r} is the Kinetics-400 class {label!r} (a safe name)"
             for folder, label in sorted(renamed.items())]
    if CLASSES_FILE not in top.files and kinetics.kinetics_order(classes):
        notes.append(f"every class is a Kinetics-400 class: {CLASSES_FILE} keeps Kinetics' label order")
    finish_class_folders(source, top, target, classes)
    return Imported(tuple(classes), tuple(skipped), notes=tuple(notes))
