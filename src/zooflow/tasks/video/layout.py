"""The Kinetics-style video layout: ``<split>/<class>/<clip>``, where a clip is a video file
(``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ...) or the book's frame folder
(``<clip>/image_00001.jpg`` ...), with ``classes.txt`` declaring the classes in label order.

The manifest has one row per entry of a class folder, each clip decoded through
(``clips.probe``): a clip that does not open, has no video stream, is truncated or corrupt, has
fewer frames than the model samples, or sits in an undeclared class folder is a row whose
flag is False and whose ``error`` says why, so validation names it. The same clip (by content)
in two splits is a leak.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from zooflow import progress
from zooflow.data.imagefolder import SPLITS
from zooflow.data.labelled import add_split_facts
from zooflow.tasks.video import clips

LAYOUT = f"{'/'.join(SPLITS)}/<class>/<clip>.mp4 (or .avi/.mkv/.webm/.mov, or a folder of image_00001.jpg ...)"
FLAGS = ("readable", "class_declared", "enough_frames")  # must be True on every row
COLUMNS = {"path": str, "split": str, "label": str, "kind": str, "frames": "int64", "declared_frames": "int64",
           "seconds": float, "width": "int64", "height": "int64", "codec": str, "container": str, "audio": bool,
           "bytes": "int64", "sha256": str, "readable": bool, "class_declared": bool, "enough_frames": bool,
           "error": str}


def entries(folder: Path, split: str) -> list[tuple[str, Path]]:
    """(label, clip) for every visible entry of ``<folder>/<split>/<label>/``, sorted (the
    dataset's order). Entries that are no clip at all (a text file, a link) are listed too: the
    manifest flags them, the dataset skips nothing silently because validation ran first."""
    split_dir = Path(folder) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} is missing: this dataset needs {LAYOUT}")
    found = []
    for label_dir in sorted(split_dir.iterdir()):
        if label_dir.name.startswith("."):
            continue
        if label_dir.is_symlink() or not label_dir.is_dir():
            found.append(("", label_dir))
            continue
        found += [(label_dir.name, entry) for entry in sorted(label_dir.iterdir()) if not entry.name.startswith(".")]
    return found


def _content_hash(path: Path) -> tuple[int, str]:
    """(bytes, sha256) of a file, or of a frame folder's frames in order."""
    digest, size = hashlib.sha256(), 0
    for file in (clips.frame_files(path) if path.is_dir() else [path]):
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def _inspect(label: str, path: Path, classes: list[str], segments: int, max_side: int, max_frames: int) -> dict:
    """One clip's row (never raises for bad data: a bad clip is a row validation names)."""
    row = {"kind": "", "frames": 0, "declared_frames": 0, "seconds": 0.0, "width": 0, "height": 0, "codec": "",
           "container": "", "audio": False, "bytes": 0, "sha256": "", "readable": False,
           "class_declared": label in classes, "enough_frames": False, "error": ""}
    if not label:
        row["error"] = f"not a class folder: clips go in {LAYOUT}"
        return row
    if path.is_symlink():
        row["error"] = "a symbolic link (data/ holds plain files and folders only)"
        return row
    if path.is_file() and not clips.is_video_file(path.name):
        row["error"] = f"not a video file extension ({path.suffix or 'none'}); expected one of " \
                       f"{', '.join(clips.VIDEO_EXTENSIONS)} or a frame folder"
        return row
    try:
        facts = clips.probe(path, max_side, max_frames)
        row["bytes"], row["sha256"] = _content_hash(path)
    except clips.ClipError as error:
        row["error"] = str(error).removeprefix(f"{path}: ")
        return row
    row.update(kind=facts.kind, frames=facts.frames, declared_frames=facts.declared_frames, seconds=facts.seconds,
               width=facts.width, height=facts.height, codec=facts.codec, container=facts.container,
               audio=facts.audio, readable=True, enough_frames=facts.frames >= segments)
    if not row["enough_frames"]:
        row["error"] = f"{facts.frames} frames, fewer than the {segments} segments the model samples"
    elif not row["class_declared"]:
        row["error"] = f"the class folder {label!r} is not declared in classes.txt"
    return row


def manifest(folder: Path, classes: list[str], segments: int, relative_to: Path | None = None,
             max_side: int = clips.MAX_SIDE, max_frames: int = clips.MAX_FRAMES) -> pd.DataFrame:
    """One row per entry of the class folders of both splits (``COLUMNS``, plus ``split_label``,
    ``class_count`` and ``in_other_split``); paths relative to ``relative_to`` (default ``folder``)."""
    base = Path(relative_to) if relative_to else Path(folder)
    listed = [(split, label, path) for split in SPLITS for label, path in entries(folder, split)]
    rows = []
    with progress.phase(f"manifest of {Path(folder).name}/", len(listed), "clips") as shown:
        for split, label, path in listed:
            rows.append({"path": str(path.relative_to(base)), "split": split, "label": label,
                         **_inspect(label, path, classes, segments, max_side, max_frames)})
            shown.advance()
    table = pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)
    return add_split_facts(table)


def expectations(classes: list[str], min_per_class: int, min_side: int, max_side: int) -> list:
    """The suite of a video manifest: every flag holds, no clip leaks between splits, every class
    has at least ``min_per_class`` clips in every split, frames within the size bounds."""
    import great_expectations as gx  # slow import; serving a model never needs it

    every_split_class = [f"{split}/{label}" for split in SPLITS for label in classes]
    readable = {"row_condition": 'readable == True', "condition_parser": "pandas"}
    return [*(gx.expectations.ExpectColumnValuesToBeInSet(column=flag, value_set=[True]) for flag in FLAGS),
            gx.expectations.ExpectColumnValuesToBeInSet(column="in_other_split", value_set=[False]),
            gx.expectations.ExpectColumnDistinctValuesToContainSet(column="split_label", value_set=every_split_class),
            gx.expectations.ExpectColumnValuesToBeBetween(column="class_count", min_value=min_per_class),
            gx.expectations.ExpectColumnValuesToBeBetween(column="width", min_value=min_side, max_value=max_side,
                                                          **readable),
            gx.expectations.ExpectColumnValuesToBeBetween(column="height", min_value=min_side, max_value=max_side,
                                                          **readable)]


class VideoClips(Dataset):
    """One split as ``(clip, label)``: ``segments`` frames sampled from each clip (random ones
    when ``train``, centre ones otherwise), as a ``tv_tensors.Video`` (uint8 ``[N, 3, H, W]``)
    passed through ``transform``. ``single_frame`` reads one frame instead (a random one of the
    whole clip when training, its middle one otherwise), repeated ``segments`` times: what the
    single-frame model sees."""

    def __init__(self, folder: Path, split: str, classes: list[str], segments: int, train: bool,
                 transform=None, single_frame: bool = False, max_side: int = clips.MAX_SIDE):
        self.classes = list(classes)
        index = {name: number for number, name in enumerate(self.classes)}
        self.items = [(path, index[label]) for label, path in entries(folder, split) if label in index]
        self.targets = [label for _, label in self.items]
        self.segments, self.train, self.transform = segments, train, transform
        self.single_frame, self.max_side = single_frame, max_side

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, index: int) -> torch.Tensor:
        """The sampled frames of clip ``index``, uint8 ``[N, H, W, 3]`` (before ``transform``)."""
        path, _ = self.items[index]
        # Training draws from torch's RNG: seeded per DataLoader worker from the global state the
        # checkpoint carries, so a resumed run samples the frames an uninterrupted one would.
        if self.single_frame:  # one segment: a random frame of the whole clip, or its middle one
            one = torch.from_numpy(clips.read_segments(path, 1, self.train, _draw, self.max_side))
            return one.expand(self.segments, -1, -1, -1)
        return torch.from_numpy(clips.read_segments(path, self.segments, self.train, _draw, self.max_side))

    def __getitem__(self, index: int):
        video = as_video(self.frames(index))
        return (self.transform(video) if self.transform is not None else video), self.items[index][1]


def as_video(frames) -> "torch.Tensor":
    """uint8 frames ``[N, H, W, 3]`` (tensor or array) as the ``tv_tensors.Video``
    ``[N, 3, H, W]`` the task's transforms take (one set of random parameters for all frames)."""
    from torchvision import tv_tensors

    frames = torch.as_tensor(frames)
    return tv_tensors.Video(frames.permute(0, 3, 1, 2).contiguous())


def _draw(low: int, high: int) -> int:
    return int(torch.randint(low, high, ()))
