"""The rules every importer shares: what it may read, what names it accepts, where it may write.

An import reads a user's folder or file and writes a task's data folder. Three rules keep it
confined:

- **No links.** The source is walked without following symlinks (``os.walk(followlinks=False)``
  and ``lstat``), and any symlink inside it - to a file, to a folder, dangling or a loop - is
  refused by name. A link to ``/etc/passwd`` would otherwise be copied into data/, the DVC cache
  and the remote, and a link to an image elsewhere would be trained on without anyone seeing it.
  The source path the user typed is the one exception: it is resolved once (``~/datasets`` may
  well be a link to a bigger disk), and nothing below it is followed.
- **Safe names.** A label or class name becomes a folder name, an MLflow metric key and text in
  the HTML model card, so it must be: letters or digits of any script, ``_``, ``-``, ``.`` and
  inner spaces; it starts with a letter, digit or ``_``, does not end in a space or dot, is at
  most 64 characters, in Unicode NFC form, with no path separators or control characters.
- **Confined paths.** Every path derived from user data is checked to stay inside the target
  before anything is written there.

Operating-system litter (``.DS_Store``, ``Thumbs.db``, ``__MACOSX/``, AppleDouble ``._*``...) is
skipped and reported; anything else unexpected is an error that names it, never a silent drop.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from zooflow.errors import InputRejected

MAX_NAME = 64
# \w is Unicode-aware in Python 3: letters and digits of every script (ポジティブ passes), plus _.
# It is also what MLflow accepts in metric keys, so a name that passes here can become one.
NAME_PATTERN = re.compile(rf"\w[\w .-]{{0,{MAX_NAME - 1}}}")  # used with fullmatch: "$" would let "pos\n" in
ALLOWED = (f"letters or digits (any script), '_', '-', '.', and spaces inside; starting with a letter, "
           f"digit or '_', not ending in a space or '.', 1-{MAX_NAME} characters")

JUNK_FILES = {"Thumbs.db", "thumbs.db", "desktop.ini", "Desktop.ini", ".DS_Store", ".directory", "Icon\r"}
DOCUMENTS = ("README", "LICENSE", "LICENCE", "COPYING", "CITATION")  # copied along: attribution travels
JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints", ".Trashes", ".Spotlight-V100", ".fseventsd"}


class ImportRejected(InputRejected):
    """A source dataset that cannot be imported as it is; the message names the file, folder
    or row and what is wrong."""


@dataclass(frozen=True)
class Imported:
    """What an importer did: the classes it declared, the litter it skipped, the files it had to
    convert (path, what was done) and notes on known extras it left out on purpose."""

    classes: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    converted: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()


def check_name(name: str, where: str, kind: str = "label") -> str:
    """``name`` if it is a safe label/class name, else an ``ImportRejected`` that names it,
    where it came from and the allowed set."""
    if isinstance(name, str) and unicodedata.normalize("NFC", name) != name:
        # macOS writes decomposed (NFD) names; the same word must not become two classes.
        raise ImportRejected(f"{where}: the {kind} {name!r} is not in Unicode NFC form (accents stored as "
                             f"separate marks, as macOS writes file names); rename it to "
                             f"{unicodedata.normalize('NFC', name)!r}")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name[-1] in " .":
        raise ImportRejected(f"{where}: the {kind} {name!r} is not allowed: a {kind} must be {ALLOWED}")
    return name


def is_junk(name: str, folder: bool = False) -> bool:
    """True for operating-system litter that no dataset means to contain."""
    if folder:
        return name in JUNK_DIRS
    return name in JUNK_FILES or name.startswith("._")


def is_document(name: str) -> bool:
    """A top-level README/LICENSE-like file of a dataset: copied along, never read as data."""
    return name.upper().startswith(DOCUMENTS)


def inside(target: Path, path: Path) -> Path:
    """``path`` if it stays inside ``target`` once resolved; otherwise refuse (a label such as
    ``../../x`` or ``/abs/path`` must never choose where a file is written)."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(target).resolve()):
        raise ImportRejected(f"{path}: would be written outside {target}")
    return path


def resolve_source(source: Path) -> Path:
    """The source the user named, resolved once (the only link zooflow follows), and required to
    exist."""
    source = Path(source).expanduser()
    if not source.exists() and not source.is_symlink():
        raise ImportRejected(f"{source}: no such file or folder")
    try:
        resolved = source.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # a dangling link or a loop
        raise ImportRejected(f"{source}: cannot be resolved ({error})") from None
    return resolved


def _link_error(path: Path) -> ImportRejected:
    try:
        points_to = os.readlink(path)
    except OSError:
        points_to = "?"
    return ImportRejected(f"{path}: is a symbolic link (to {points_to}); zooflow never follows links in a "
                          "dataset: copy the real file or folder there instead")


def regular_file(path: Path) -> Path:
    """``path`` if it is a plain file itself (not a link, device, pipe...); else refuse by name."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ImportRejected(f"{path}: no such file") from None
    if stat.S_ISLNK(info.st_mode):
        raise _link_error(path)
    if not stat.S_ISREG(info.st_mode):
        raise ImportRejected(f"{path}: not a regular file")
    return path


def no_links_below(root: Path, path: Path) -> Path:
    """``path`` (under ``root``) if no component from ``root`` down to it is a symlink."""
    current = Path(root)
    for part in Path(path).relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise _link_error(current)
    return path


def read_bytes(path: Path) -> bytes:
    """The bytes of a plain file, opened without following a link (``O_NOFOLLOW``), so a file
    swapped for a link after it was checked is still refused."""
    regular_file(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise ImportRejected(f"{path}: cannot be read ({error.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def copy_file(source: Path, target_root: Path, target: Path) -> None:
    """Copy one plain file to ``target`` (checked to stay inside ``target_root``; never
    overwriting: ``x`` mode)."""
    inside(target_root, target)
    data = read_bytes(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as handle:
        handle.write(data)


@dataclass
class Listing:
    """One folder of a source, walked without following links: its plain files and sub-folders
    by name, and the litter that was skipped (paths relative to the walk's root)."""

    folder: Path
    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def list_folder(folder: Path, root: Path | None = None) -> Listing:
    """The entries of ``folder``, sorted, without following anything: a symlink of any kind is an
    error naming it, litter is skipped (and recorded relative to ``root``), and anything that is
    neither a plain file nor a folder (a pipe, a device) is an error."""
    folder = Path(folder)
    root = Path(root) if root else folder
    listing = Listing(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        raise ImportRejected(f"{folder}: cannot be listed ({error.strerror})") from None
    for name in names:
        path = folder / name
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise _link_error(path)
        if stat.S_ISDIR(mode):
            if is_junk(name, folder=True):
                listing.skipped.append(str(path.relative_to(root)) + "/")
            else:
                listing.folders.append(name)
        elif stat.S_ISREG(mode):
            if is_junk(name):
                listing.skipped.append(str(path.relative_to(root)))
            else:
                listing.files.append(name)
        else:
            raise ImportRejected(f"{path}: not a regular file or folder")
    return listing


def walk_refusing_links(folder: Path, root: Path) -> list[str]:
    """Walk ``folder`` and everything below it, refusing any link anywhere (by name, as
    ``list_folder`` does); the litter skipped on the way."""
    listing = list_folder(folder, root)
    skipped = list(listing.skipped)
    for name in listing.folders:
        skipped += walk_refusing_links(folder / name, root)
    return skipped


def some_names(names: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``names`` for a note, with "... (N in all)" when there are more."""
    more = f" ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def find_links(folder: Path) -> list[Path]:
    """Every symlink under ``folder`` (not followed): for checking what an importer wrote."""
    found = []
    for top, folders, files in os.walk(folder, followlinks=False):
        found += [Path(top) / name for name in folders + files if (Path(top) / name).is_symlink()]
    return found


def fresh_target(target: Path) -> Path:
    """An empty folder at ``target`` for an importer to fill (a previous one is removed: the
    import pipeline only ever hands an importer a new staging folder)."""
    target = Path(target)
    if target.is_symlink():
        raise ImportRejected(f"{target}: is a symbolic link; refusing to write through it")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return target


def copy_label_folder(source: Path, split: str, label: str, target: Path, kind: str, holds: str,
                      refuse=lambda name: None) -> tuple[str, ...]:
    """Copy the files of ``source/<split>/<label>/`` to the same place under ``target``. A
    sub-folder is an error naming it (``kind`` folders hold only ``holds``), and so is a file for
    which ``refuse(name)`` gives a reason. Returns the litter skipped."""
    return copy_flat_folder(source, Path(split, label), target, Path(split, label), kind, holds, refuse)


def copy_flat_folder(source: Path, folder: Path, target: Path, into: Path, kind: str, holds: str,
                     refuse=lambda name: None) -> tuple[str, ...]:
    """Copy the files of ``source/<folder>`` into ``target/<into>``: a folder that holds files
    only. A sub-folder is an error naming it (``kind`` folders hold only ``holds``), and so is a
    file for which ``refuse(name)`` gives a reason. Returns the litter skipped."""
    listing = list_folder(source / folder, source)
    if listing.folders:
        raise ImportRejected(f"{source / folder / listing.folders[0]}: a folder inside the {kind} folder "
                             f"{folder.as_posix()}/, where only {holds} belong")
    for name in listing.files:
        if reason := refuse(name):
            raise ImportRejected(f"{source / folder / name}: {reason}")
        copy_file(source / folder / name, target, target / into / name)
    return listing.skipped


def require_every_split(labels_by_split: dict[str, set[str]], where: Path) -> None:
    """Every label must appear in every split: a label in one split only is either a typo or a
    class the model would be trained on and never tested on (or the reverse)."""
    every = set().union(*labels_by_split.values())
    for label in sorted(every):
        missing = [split for split, labels in labels_by_split.items() if label not in labels]
        if missing:
            present = [split for split in labels_by_split if split not in missing]
            raise ImportRejected(f"{where}: the label {label!r} is in {'/'.join(present)} but missing from "
                                 f"{'/'.join(missing)}; every label needs examples in every split "
                                 f"({', '.join(labels_by_split)})")
