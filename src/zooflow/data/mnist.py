"""MNIST in its real on-disk format: the idx files of ``MNIST/raw`` (what torchvision's
``MNIST(root, download=False)`` reads), plus import from digit image folders.

Layout under a task's data folder::

    MNIST/raw/train-images-idx3-ubyte   MNIST/raw/train-labels-idx1-ubyte
    MNIST/raw/t10k-images-idx3-ubyte    MNIST/raw/t10k-labels-idx1-ubyte

Splits: ``test`` is the t10k pair; ``val`` is every ``VAL_EVERY``-th image of each digit in the
training pair (a fixed rule, so the split is part of the data version, not of a seed);
``train`` is the rest of the training pair.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.data.labelled import add_split_facts
from zooflow.errors import InputRejected

RAW = Path("MNIST") / "raw"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SPLITS = ("train", "val", "test")
VAL_EVERY = 5  # 1 in 5 of each digit's training images is validation data
DIGITS = tuple(str(d) for d in range(10))

# idx type codes (the third byte of the magic number) -> numpy dtype, big-endian as stored.
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxFormatError(InputRejected):
    """An idx file that cannot be read as what it claims to be; the message names the file."""


def read_idx(path: Path) -> np.ndarray:
    """The array an idx file (optionally ``.gz``) holds, checking its header against its size."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(f"{path}: not an idx file (the magic number must start with two zero bytes)")
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
        for index in range(len(labels)):
            image = images[index]
            rows.append({"path": f"{name}#{index}", "split": splits[index], "label": str(labels[index]),
                         "rows": image.shape[0], "cols": image.shape[1],
                         "pixel_min": float(image.min()), "pixel_max": float(image.max()),
                         "sha256": hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(), "error": ""})
    return add_split_facts(pd.DataFrame(rows))


def write_mnist(folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> None:
    """Write (images, labels) pairs as the four MNIST idx files under ``folder/MNIST/raw``."""
    raw = Path(folder) / RAW
    for file_split, (images, labels) in (("train", train), ("test", test)):
        write_idx(raw / FILES[file_split][0], images)
        write_idx(raw / FILES[file_split][1], labels)


def _read_digit_folder(split_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for digit_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if digit_dir.name not in DIGITS:
            raise ValueError(f"{digit_dir}: digit folders must be named 0-9")
        for file in sorted(p for p in digit_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                image = Image.open(file).convert("L")
            except (UnidentifiedImageError, OSError) as error:
                raise ValueError(f"{file}: not a readable image ({error})") from None
            if image.size != (28, 28):
                raise ValueError(f"{file}: digit images must be 28x28, got {image.size[0]}x{image.size[1]}")
            images.append(np.asarray(image, dtype=np.uint8))
            labels.append(int(digit_dir.name))
    if not images:
        raise ValueError(f"{split_dir}: no digit images (expected {split_dir}/<digit>/*.png)")
    return np.stack(images), np.asarray(labels, dtype=np.uint8)


def import_digits(source: Path, target: Path) -> list[str]:
    """Bring MNIST into ``target``: either a folder holding the idx files (``MNIST/raw``, ``raw``
    or the folder itself; ``.gz`` or not) or digit image folders (``train/<digit>/*.png`` and
    ``test/<digit>/*.png``, 28x28 grey). Returns the digits present."""
    source = Path(source)
    candidates = [source / RAW, source / "raw", source]
    raw = next((c for c in candidates if (c / FILES["train"][0]).is_file()
                or (c / (FILES["train"][0] + ".gz")).is_file()), None)
    staging = Path(str(target) + ".importing")
    if staging.exists():
        shutil.rmtree(staging)
    if raw is not None:
        for file_split in FILES:
            images, labels, _ = _pair(source, file_split, raw=raw)
            write_idx(staging / RAW / FILES[file_split][0], images)
            write_idx(staging / RAW / FILES[file_split][1], labels)
    elif (source / "train").is_dir() and (source / "test").is_dir():
        write_mnist(staging, _read_digit_folder(source / "train"), _read_digit_folder(source / "test"))
    else:
        raise FileNotFoundError(f"{source} holds neither the MNIST idx files (train-images-idx3-ubyte, ...) "
                                f"nor digit folders train/<digit>/ and test/<digit>/")
    labels = read_idx(staging / RAW / FILES["train"][1])
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return [str(d) for d in sorted(np.unique(labels))]

