"""``zooflow data import video <folder>``: a Kinetics-style folder into ``data/video``.

The source is ``train/<class>/<clip>`` and ``val/<class>/<clip>``, where a clip is a video file or
a frame folder (``<clip>/image_00001.jpg`` ...), with an optional ``classes.txt`` declaring the
class order (a pretrained network's output order); without one, the classes are ``train/``'s
folders, sorted. The trust rules of ``data/safety.py`` hold: no link is followed (one is an
error naming it), class names must be safe names, every class needs clips in both splits, and
nothing is written outside the staging target. Operating-system litter is skipped and reported.
What a clip holds (does it decode, is it whole, has it enough frames) is validation's to judge
afterwards, on the staged copy: every file is copied.
"""

from __future__ import annotations

from pathlib import Path

from zooflow.data import safety
from zooflow.data.imagefolder import CLASSES_FILE, SPLITS, read_classes, write_classes
from zooflow.data.safety import ImportRejected, Imported
from zooflow.tasks.video.layout import LAYOUT


def _copy_clip_folder(source: Path, split: str, label: str, name: str, target: Path) -> list[str]:
    """Copy a frame folder (files only: a folder inside it is refused by name)."""
    folder = source / split / label / name
    listing = safety.list_folder(folder, source)
    if listing.folders:
        raise ImportRejected(f"{folder / listing.folders[0]}: a folder inside the frame folder {split}/{label}/{name}/,"
                             f" which holds image_00001.jpg, image_00002.jpg, ... only")
    for file in listing.files:
        safety.copy_file(folder / file, target, target / split / label / name / file)
    return listing.skipped


def import_videos(source: Path, target: Path) -> Imported:
    """Copy a Kinetics-style video dataset into ``target`` (see the module docstring); the
    classes declared and the litter skipped."""
    source, target = Path(source), safety.fresh_target(target)
    top = safety.list_folder(source)
    missing = [split for split in SPLITS if split not in top.folders]
    if missing:
        raise ImportRejected(f"{source} is not a video dataset: no {', '.join(missing)} folder(s) (expected {LAYOUT}; "
                             f"a folder of class folders, as the book's kinetics_videos/, goes in train/ and val/)")
    for name in top.folders:
        if name not in SPLITS:
            raise ImportRejected(f"{source / name}: an unknown split folder; a video dataset has "
                                 f"{' and '.join(SPLITS)} only")
    for name in top.files:
        if name != CLASSES_FILE and not safety.is_document(name):
            raise ImportRejected(f"{source / name}: an unexpected file beside the split folders (expected {LAYOUT} "
                                 f"and optionally {CLASSES_FILE})")
    skipped = list(top.skipped)
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        listing = safety.list_folder(source / split, source)
        skipped += listing.skipped
        if listing.files:
            raise ImportRejected(f"{source / split / listing.files[0]}: a file directly in {split}/; clips go in "
                                 f"{split}/<class>/")
        found[split] = {safety.check_name(name, str(source / split / name), "class name") for name in listing.folders}
        for label in sorted(found[split]):
            clips = safety.list_folder(source / split / label, source)
            skipped += clips.skipped
            for name in clips.files:
                safety.copy_file(source / split / label / name, target, target / split / label / name)
            for name in clips.folders:
                skipped += _copy_clip_folder(source, split, label, name, target)
            (target / split / label).mkdir(parents=True, exist_ok=True)
    safety.require_every_split(found, source)
    if CLASSES_FILE in top.files:
        classes = read_classes(source)
        undeclared = sorted(set().union(*found.values()) - set(classes))
        if undeclared:
            raise ImportRejected(f"{source / CLASSES_FILE}: does not declare the class folder(s) {undeclared}")
    else:
        classes = sorted(found["train"])
    write_classes(target, classes)
    for name in top.files:
        if safety.is_document(name):
            safety.copy_file(source / name, target, target / name)
    return Imported(tuple(classes), tuple(skipped))
