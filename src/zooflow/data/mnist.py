"""MNIST in its real on-disk format: the idx files of ``MNIST/raw`` (what torchvision's
``MNIST(root, download=False)`` reads), plus import from digit image folders.

Layout under a task's data folder::

    MNIST/raw/train-images-idx3-ubyte   MNIST/raw/train-labels-idx1-ubyte
    MNIST/raw/t10k-images-idx3-ubyte    MNIST/raw/t10k-labels-idx1-ubyte
    classes.txt                         (optional) the name of label 0, 1, ... 9, one per line

The idx format stores label ids only. Data in this format that is not digits (Fashion-MNIST:
"T-shirt/top", "Sneaker", ...) names its classes in ``classes.txt``; without one the names are
the ids "0".."9".

Splits: ``test`` is the t10k pair; ``val`` is every ``VAL_EVERY``-th image of each digit in the
training pair (a fixed rule, so the split is part of the data version, not of a seed);
``train`` is the rest of the training pair.
"""

from __future__ import annotations

import gzip
import os
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow import progress
from zooflow.data import safety
from zooflow.data.labelled import add_split_facts
from zooflow.data.safety import Imported
from zooflow.errors import InputRejected

RAW = Path("MNIST") / "raw"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SPLITS = ("train", "val", "test")
VAL_EVERY = 5  # 1 in 5 of each digit's training images is validation data
DIGITS = tuple(str(d) for d in range(10))
CLASSES_FILE = "classes.txt"

# idx type codes (the third byte of the magic number) -> numpy dtype, big-endian as stored.
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxFormatError(InputRejected):
    """An idx file that cannot be read as what it claims to be; the message names the file."""


# The largest idx file read: full MNIST / Fashion-MNIST training images are 47 MB; a gzip that
# expands past this is a bomb, refused before it takes the machine's memory.
MAX_IDX_BYTES = 2 * 2**30


def _gunzip(raw: bytes, limit: int = MAX_IDX_BYTES) -> bytes:
    """A gzip file's content, refusing (MemoryError) to expand past ``limit`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect a gzip header and trailer
    data = inflater.decompress(raw, limit + 1)
    if len(data) > limit:
        raise MemoryError(limit)
    if not inflater.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
    return data


def read_idx(path: Path) -> np.ndarray:
    """The array an idx file (optionally ``.gz``) holds, checking its header against its size."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = _gunzip(raw)
        # A cut download ends in EOFError, which the CLI would take for Ctrl-C: name the file instead.
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
            raise IdxFormatError(f"{path}: not a complete gzip file ({error}); download it again") from None
        except MemoryError:
            raise IdxFormatError(f"{path}: expands to more than {MAX_IDX_BYTES // 2**30} GiB "
                                 "(a gzip bomb, or not an MNIST-sized dataset)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        hint = " (it is gzipped: name it .gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise IdxFormatError(f"{path}: not an idx file (the magic number must start with two zero bytes){hint}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise IdxFormatError(f"{path}: unknown idx type code 0x{code:02X}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: header promises {ndim} dimensions but the file ends first")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxFormatError(f"{path}: header says shape {shape} ({expected} bytes of data) "
                             f"but the file holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an (uncompressed) idx file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())
    return path


def _find(raw: Path, name: str) -> Path:
    plain = Path(raw) / name
    return plain if plain.is_file() or not plain.with_suffix(".gz").is_file() else plain.with_suffix(".gz")


def val_mask(labels: np.ndarray) -> np.ndarray:
    """True for the training-file images that form the validation split: every
    ``VAL_EVERY``-th image of each digit, in file order."""
    mask = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        where = np.flatnonzero(labels == digit)
        mask[where[VAL_EVERY - 1::VAL_EVERY]] = True
    return mask


@dataclass(frozen=True)
class Digits:
    """One split: images (N, H, W) uint8, labels (N,) int64, and each image's index in its file."""

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    file: str

    def only(self, digits) -> "Digits":
        """The images of the given digits."""
        keep = np.isin(self.labels, [int(d) for d in digits])
        return Digits(self.images[keep], self.labels[keep], self.index[keep], self.file)

    def __len__(self) -> int:
        return len(self.labels)


def _pair(folder: Path, file_split: str, raw: Path | None = None) -> tuple[np.ndarray, np.ndarray, Path]:
    """(images, labels, images file) of one idx pair under ``folder/MNIST/raw`` (or ``raw``)."""
    raw = raw or Path(folder) / RAW
    images_file, labels_file = (_find(raw, name) for name in FILES[file_split])
    for file in (images_file, labels_file):
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing: MNIST data needs the four idx files under {raw}")
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3:
        raise IdxFormatError(f"{images_file}: images must have 3 dimensions (N, rows, cols), got shape {images.shape}")
    if labels.ndim != 1:
        raise IdxFormatError(f"{labels_file}: labels must have 1 dimension, got shape {labels.shape}")
    if len(images) != len(labels):
        raise IdxFormatError(f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} labels")
    return images, labels, images_file


def load_split(folder: Path, split: str) -> Digits:
    """Read one split (``train``, ``val`` or ``test``) from the idx files under ``folder``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
    images, labels, file = _pair(folder, "test" if split == "test" else "train")
    keep = np.ones(len(labels), dtype=bool)
    if split != "test":
        keep = val_mask(labels) if split == "val" else ~val_mask(labels)
    return Digits(np.asarray(images[keep], dtype=np.uint8), labels[keep].astype(np.int64),
                  np.flatnonzero(keep), str(file))


def manifest(folder: Path, relative_to: Path) -> pd.DataFrame:
    """One row per image (``path`` = ``<file>#<index>``) with what validation checks: label,
    shape, pixel range, content hash, split facts. A file that cannot be read becomes one row
    with its ``error``, so validation names it rather than crashing."""
    rows = []
    for file_split in FILES:
        try:
            images, labels, images_file = _pair(folder, file_split)
        except (IdxFormatError, FileNotFoundError) as error:
            name = Path(folder) / RAW / FILES[file_split][0]
            rows.append({"path": str(name.relative_to(relative_to)), "split": file_split, "label": "?",
                         "rows": 0, "cols": 0, "pixel_min": 0.0, "pixel_max": 0.0, "sha256": "",
                         "error": str(error)})
            continue
        splits = np.full(len(labels), "test" if file_split == "test" else "train", dtype=object)
        if file_split == "train":
            splits[val_mask(labels)] = "val"
        name = str(images_file.relative_to(relative_to))
        with progress.phase(f"manifest of {name}", len(labels), "images") as shown:
            for index in range(len(labels)):
                image = images[index]
                rows.append({"path": f"{name}#{index}", "split": splits[index], "label": str(labels[index]),
                             "rows": image.shape[0], "cols": image.shape[1],
                             "pixel_min": float(image.min()), "pixel_max": float(image.max()),
                             "sha256": hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(), "error": ""})
                shown.advance()
    return add_split_facts(pd.DataFrame(rows))


def read_class_names(folder: Path) -> list[str]:
    """The ten class names ``folder/classes.txt`` declares, in label order (line 1 names label
    0). Every name must be a safe name (``safety.check_name``: it becomes a metric key and card
    text); anything but exactly ten distinct names is an error naming the file."""
    from zooflow.data.imagefolder import read_classes  # the shared classes.txt rules

    path = Path(folder) / CLASSES_FILE
    if path.is_symlink():  # read_classes checks too, but only after is_file() has followed the link
        raise safety.ImportRejected(f"{path}: is a symbolic link; classes.txt must be a plain file")
    names = read_classes(folder)
    if len(names) != len(DIGITS):
        raise safety.ImportRejected(f"{path}: declares {len(names)} class names; the idx labels are 0-9, "
                                    f"so it needs exactly {len(DIGITS)} lines (line 1 names label 0)")
    return names


def class_names(folder: Path) -> list[str]:
    """The names of labels 0-9 in a task's data folder: its ``classes.txt``, or "0".."9"."""
    return read_class_names(folder) if os.path.lexists(Path(folder) / CLASSES_FILE) else list(DIGITS)


def write_mnist(folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                classes: list[str] | None = None) -> None:
    """Write (images, labels) pairs as the four MNIST idx files under ``folder/MNIST/raw``, and
    ``classes`` (when given) as ``folder/classes.txt``."""
    raw = Path(folder) / RAW
    for file_split, (images, labels) in (("train", train), ("test", test)):
        write_idx(raw / FILES[file_split][0], images)
        write_idx(raw / FILES[file_split][1], labels)
    if classes is not None:
        (Path(folder) / CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")


def _read_digit_folder(source: Path, split: str, classes: list[str] | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(images, labels, skipped litter, conversions) of ``source/split/<label>/*``, by the import
    rules: no links, label folders 0-9 (or, with ``classes``, the class names) only, image files
    only, 28x28 after decoding."""
    from zooflow.data import images as image_files

    split_dir = Path(source) / split
    listing = safety.list_folder(split_dir, source)
    skipped, converted, pixels, labels = list(listing.skipped), [], [], []
    if listing.files:
        raise IdxFormatError(f"{split_dir / listing.files[0]}: a file directly in {split}/; images go in "
                             f"{split}/<label>/")
    label_of = {name: index for index, name in enumerate(DIGITS)}
    if classes is not None:
        label_of |= {name: index for index, name in enumerate(classes)}
    for digit in listing.folders:
        if digit not in label_of:
            known = "0-9" + (f" or a class name of classes.txt ({', '.join(classes)})" if classes else "")
            raise IdxFormatError(f"{split_dir / digit}: label folders must be named {known}, not {digit!r}")
        files = safety.list_folder(split_dir / digit, source)
        skipped += files.skipped
        if files.folders:
            raise IdxFormatError(f"{split_dir / digit / files.folders[0]}: a folder inside a label folder, where "
                                 "only images belong")
        for name in files.files:
            file = split_dir / digit / name
            decoded = image_files.decode(safety.read_bytes(file), "L", max_side=image_files.MAX_SIDE)
            if decoded.image.size != (28, 28):
                raise IdxFormatError(f"{file}: MNIST-format images must be 28x28, got "
                                     f"{decoded.image.size[0]}x{decoded.image.size[1]}")
            if decoded.steps:
                converted.append((str(file.relative_to(source)), "; ".join(decoded.steps)))
            pixels.append(np.asarray(decoded.image, dtype=np.uint8))
            labels.append(label_of[digit])
    if not pixels:
        raise IdxFormatError(f"{split_dir}: no images (expected {split_dir}/<label>/*.png)")
    return np.stack(pixels), np.asarray(labels, dtype=np.uint8), skipped, converted


def _source_classes(source: Path, raw: Path | None) -> list[str] | None:
    """The class names a source declares: ``classes.txt`` beside the idx files or at the top of
    the source (one of the two, not both), checked like every importer's; None without one."""
    places = dict.fromkeys(folder / CLASSES_FILE for folder in (raw, source) if folder is not None)
    found = [path for path in places if os.path.lexists(path)]
    if len(found) > 1:
        raise safety.ImportRejected(f"{found[0]} and {found[1]}: two class lists; keep one")
    if not found:
        return None
    safety.regular_file(safety.no_links_below(source, found[0]))
    return read_class_names(found[0].parent)


def _check_labels(labels: np.ndarray, file: Path) -> None:
    """Labels must be 0-9 (the idx format's ten classes): the first that is not is named by its index."""
    bad = np.flatnonzero(labels > 9)
    if len(bad):
        raise IdxFormatError(f"{file}: label {int(labels[bad[0]])} at index {int(bad[0])} is not a label 0-9"
                             + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


def _find_raw(source: Path) -> Path | None:
    """The folder holding the idx files: ``MNIST/raw``, ``raw`` or the source itself."""
    for candidate in (source / RAW, source / "raw", source):
        for name in (FILES["train"][0], FILES["train"][0] + ".gz"):
            if (candidate / name).is_file() or (candidate / name).is_symlink():
                return candidate
    return None


def import_digits(source: Path, target: Path) -> Imported:
    """Bring MNIST-format data into ``target``: either a folder holding the idx files
    (``MNIST/raw``, ``raw`` or the folder itself; ``.gz`` or not) or image folders
    (``train/<label>/*.png`` and ``test/<label>/*.png``, 28x28 grey). An optional
    ``classes.txt`` (beside the idx files or at the top) names labels 0-9 and is kept as
    ``target/classes.txt``; image folders may then be named by class name. Links are refused,
    labels must be 0-9, and a class present in one split only is an error. Returns the class
    names present."""
    source = Path(source)
    raw = _find_raw(source)
    classes = _source_classes(source, raw)
    skipped: list[str] = []
    converted: list[tuple[str, str]] = []
    if raw is not None:
        pairs = {}
        for file_split in FILES:
            for name in FILES[file_split]:
                for candidate in (raw / name, raw / (name + ".gz")):
                    if os.path.lexists(candidate):  # not followed: a link is refused, not read
                        safety.regular_file(safety.no_links_below(source, candidate))
            images, labels, _ = _pair(source, file_split, raw=raw)
            _check_labels(labels, _find(raw, FILES[file_split][1]))
            pairs[file_split] = (images, labels)
        found = {split: {str(d) for d in np.unique(pairs[split][1])} for split in FILES}
    elif (source / "train").is_dir() and (source / "test").is_dir():
        top = safety.list_folder(source)
        skipped += top.skipped
        for name in top.folders:
            if name not in FILES:
                raise IdxFormatError(f"{source / name}: an unknown split folder; label folders are "
                                     f"train/<label>/ and test/<label>/")
        pairs, found = {}, {}
        for split in FILES:
            images, labels, litter, done = _read_digit_folder(source, split, classes)
            pairs[split] = (images, labels)
            skipped += litter
            converted += done
            found[split] = {str(d) for d in np.unique(labels)}
    else:
        raise IdxFormatError(f"{source} holds neither the MNIST idx files (train-images-idx3-ubyte, ...) "
                             f"nor image folders train/<label>/ and test/<label>/")
    names = classes or list(DIGITS)
    found = {split: {names[int(label)] for label in labels} for split, labels in found.items()}
    safety.require_every_split(found, source)
    write_mnist(safety.fresh_target(target), pairs["train"], pairs["test"], classes)
    return Imported(tuple(name for name in names if name in found["train"]), tuple(skipped), tuple(converted))
