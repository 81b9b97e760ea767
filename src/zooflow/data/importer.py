"""Bring a user's own dataset into data/ as a new data version: confined and transactional.

``import_dataset(task, source, root)`` is the one entry point (``zooflow data import``):

1. refuse at once when data/ does not match data.dvc (an unrecorded edit would be swept into
   the new version, or lost);
2. run the task's own importer into a staging folder, ``.zooflow/staging/<uuid>/<folder>``: on
   the same filesystem as data/ (so the swap is a rename) and outside it (DVC never sees it);
   importers follow the rules of ``safety`` (no links, safe names, confined paths);
3. validate the staged data with the task's manifest and Great Expectations suite, so no
   version that would fail validation is ever recorded or pushed;
4. swap: the old ``data/<folder>`` moves into the staging folder, the staged one into data/;
5. ``dvc add`` + ``dvc push`` (``store.commit``).

On any error - a refusal, a bug, Ctrl-C - the old folder is put back and ``data.dvc`` gets its
exact bytes back; the staging folder is always removed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from zooflow.data import safety, store
from zooflow.data.imagefolder import CLASSES_FILE, SPLITS, read_classes, write_classes
from zooflow.data.safety import ImportRejected, Imported

STAGING = Path(".zooflow") / "staging"


@dataclass(frozen=True)
class ImportReport:
    """What an import did: the task's folder, its classes, the litter skipped, the files that
    needed a conversion (path, what), notes on known extras left out, and the data versions."""

    task: str
    folder: str
    classes: tuple[str, ...]
    skipped: tuple[str, ...]
    converted: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    data_md5: str
    previous_md5: str

    def lines(self, show: int = 5) -> list[str]:
        """The summary the CLI prints (long lists cut to ``show`` items)."""
        def some(items) -> str:
            items = list(items)
            more = f" ... and {len(items) - show} more" if len(items) > show else ""
            return ", ".join(items[:show]) + more

        lines = [f"data/{self.folder}: classes {list(self.classes)}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} operating-system file(s): {some(self.skipped)}")
        kinds: dict[str, list[str]] = {}
        for path, what in self.converted:
            kinds.setdefault(what, []).append(path)
        for what, paths in sorted(kinds.items()):
            lines.append(f"converted on load ({what}): {len(paths)} file(s): {some(paths)}")
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"data version: {self.data_md5} (was {self.previous_md5 or 'none'})")
        return lines


# -- the ImageFolder importer (chapter 1) -----------------------------------------------------

def class_split_top(source: Path, kind: str, layout: str) -> safety.Listing:
    """The top of a ``<split>/<class>/...`` dataset (an ImageFolder, a video folder): ``train/``
    and ``val/``, nothing else but ``classes.txt`` and documents (README, LICENSE...); each
    refusal names the folder or file. ``kind`` and ``layout`` word the messages."""
    top = safety.list_folder(source)
    missing = [split for split in SPLITS if split not in top.folders]
    if missing:
        raise ImportRejected(f"{source} is not {kind}: no {', '.join(missing)} folder(s) (expected {layout})")
    for name in top.folders:
        if name not in SPLITS:
            raise ImportRejected(f"{source / name}: an unknown split folder; {kind} has {' and '.join(SPLITS)} only")
    for name in top.files:
        if name != CLASSES_FILE and not safety.is_document(name):
            raise ImportRejected(f"{source / name}: an unexpected file beside the split folders "
                                 f"(expected {layout} and optionally {CLASSES_FILE})")
    return top


def split_folder(source: Path, split: str, holds: str) -> safety.Listing:
    """``source/<split>/``: class folders only (a file there is refused by name)."""
    listing = safety.list_folder(source / split, source)
    if listing.files:
        raise ImportRejected(f"{source / split / listing.files[0]}: a file directly in {split}/; {holds} go "
                             f"in {split}/<class>/")
    return listing


def declared_classes(source: Path, top: safety.Listing, found: dict[str, set[str]], default: list[str]) -> list[str]:
    """The class set: the source's ``classes.txt`` when it has one (it must declare every class
    folder, and each class it declares needs a ``train/`` folder), else ``default``."""
    if CLASSES_FILE not in top.files:
        return default
    classes = read_classes(source)
    undeclared = sorted(set().union(*found.values()) - set(classes))
    if undeclared:
        raise ImportRejected(f"{source / CLASSES_FILE}: does not declare the class folder(s) {undeclared}")
    empty = [name for name in classes if name not in found["train"]]
    if empty:
        raise ImportRejected(f"{source / CLASSES_FILE}: declares {empty} but {source / 'train'} has no such "
                             f"class folder")
    return classes


def finish_class_folders(source: Path, top: safety.Listing, target: Path, classes: list[str]) -> None:
    """Declare ``classes`` in ``target`` and copy the source's documents along."""
    write_classes(target, classes)
    for name in top.files:
        if safety.is_document(name):
            safety.copy_file(source / name, target, target / name)


def import_imagefolder(source: Path, target: Path) -> Imported:
    """Copy an ImageFolder dataset (``train/<class>/<image>``, ``val/<class>/<image>``, e.g. the
    book's hymenoptera_data) into ``target``, declaring its class set from ``train/`` unless the
    source's ``classes.txt`` declares one. Links, unsafe class names, stray files, nested folders
    and classes missing from a split are refused by name; litter is skipped and reported. Image
    content (decoding, size, leaks) is checked by validation afterwards."""
    source, target = Path(source), safety.fresh_target(target)
    top = class_split_top(source, "an ImageFolder dataset", f"{'/'.join(SPLITS)}/<class>/<image>")
    skipped = list(top.skipped)
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        listing = split_folder(source, split, "images")
        skipped += listing.skipped
        found[split] = {safety.check_name(name, str(source / split / name), "class name") for name in listing.folders}
        for label in sorted(found[split]):
            # Content (decoding, size) is validation's to judge, so every file is copied here.
            skipped += safety.copy_label_folder(source, split, label, target, "class", "image files")
    safety.require_every_split(found, source)
    classes = declared_classes(source, top, found, sorted(found["train"]))
    finish_class_folders(source, top, target, classes)
    return Imported(tuple(classes), tuple(skipped))


# -- the transactional import ------------------------------------------------------------------

def _as_imported(result) -> Imported:
    """A task importer's answer: ``Imported``, or (older importers) just the classes."""
    return result if isinstance(result, Imported) else Imported(tuple(result))


def _validate(task: str, task_file, module, staging: Path) -> list[tuple[str, str]]:
    """Validate the staged data exactly as a run would; the conversions its manifest records."""
    from zooflow.config import resolve
    from zooflow.tasks.base import RunContext
    from zooflow.validation.runner import ValidationFailed, validate

    cfg = resolve(task, next(iter(task_file.models)), "smoke")
    ctx = RunContext(cfg=cfg, info=module.data_info(cfg, staging), data_root=staging)
    table = module.manifest(ctx)
    report = validate(table, module.expectations(ctx), f"import-{task}")
    if not report.success:
        raise ImportRejected(f"the imported data fails the {task} validation suite, so it was not recorded "
                             f"(paths as they would be in data/):\n{ValidationFailed(report)}")
    if "converted" not in table:
        return []
    done = table[table["converted"].astype(str) != ""]
    return list(zip(done["path"].astype(str), done["converted"].astype(str)))


def _restore(live: Path, parked: Path, swapped: bool, pointer: Path, pointer_bytes: bytes | None) -> None:
    """Put the old task folder and data.dvc back exactly as they were."""
    if swapped and live.exists():
        shutil.rmtree(live)  # the new data, which was never recorded
    if parked.exists():
        os.rename(parked, live)
    if pointer_bytes is None:
        pointer.unlink(missing_ok=True)
    elif not pointer.exists() or pointer.read_bytes() != pointer_bytes:
        pointer.write_bytes(pointer_bytes)


def import_dataset(task: str, source: Path, root: Path) -> ImportReport:
    """Import ``source`` as ``task``'s data into ``root/data/<folder>`` and record it as a new
    data version (see the module docstring); the report of what was done. One data change at a
    time: a second import (or ``data commit``) waits for the first."""
    with store.data_lock(root):
        return _import_dataset(task, source, root)


def _import_dataset(task: str, source: Path, root: Path) -> ImportReport:
    from zooflow.config import load_task_file
    from zooflow.tasks import get_task

    task_file = load_task_file(task)
    folder = safety.check_name(task_file.data.folder, f"task config '{task}' data.folder", "folder")
    module = get_task(task_file.module or task)
    source = safety.resolve_source(source)
    root = Path(root).resolve()
    pointer, data_dir = root / store.POINTER, root / store.DATA_DIR
    previous_md5 = ""
    if pointer.exists():
        previous_md5 = store.pointer_md5(root)
        if not data_dir.is_dir():
            raise store.DataError(f"{data_dir} is missing but {store.POINTER} records a version: fetch it with "
                                  "`dvc pull` (or `zooflow data ensure-demo`) first, or the new version would "
                                  "hold this task's data only")
        if not store.is_clean(root):
            raise store.DataError(f"{data_dir} differs from {store.POINTER}, so an import would sweep unrecorded "
                                  "edits into the new version (or lose them): record them with `zooflow data "
                                  "commit`, or undo them with `dvc checkout data.dvc`, then import again")
    pointer_bytes = pointer.read_bytes() if pointer.exists() else None
    staging = root / STAGING / uuid.uuid4().hex
    live, parked = data_dir / folder, staging / "previous"
    swapped, made_data_dir = False, not data_dir.exists()
    try:
        staging.mkdir(parents=True)
        staged = staging / folder
        imported = _as_imported(module.import_data(source, staged))
        links = safety.find_links(staged)
        if links:  # an importer bug, not the user's: never record it
            raise RuntimeError(f"the {task} importer wrote a symbolic link: {links[0]}")
        converted = list(imported.converted) + _validate(task, task_file, module, staging)
        data_dir.mkdir(exist_ok=True)
        if live.exists() or live.is_symlink():
            os.rename(live, parked)
        os.rename(staged, live)
        swapped = True
        data_md5 = store.commit(root)
    except BaseException:  # Ctrl-C included: the old data must come back whatever stopped us
        _restore(live, parked, swapped, pointer, pointer_bytes)
        if made_data_dir and data_dir.is_dir() and not any(data_dir.iterdir()):
            data_dir.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportReport(task=task, folder=folder, classes=tuple(imported.classes), skipped=tuple(imported.skipped),
                        converted=tuple(converted), notes=tuple(imported.notes), data_md5=data_md5,
                        previous_md5=previous_md5)
