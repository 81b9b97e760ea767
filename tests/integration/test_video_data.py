"""Chapter 9's data: ``zooflow data import video`` on a Kinetics-style folder with real-world junk,
and validation (the real Great Expectations suite on the real manifest) naming each kind of bad
clip by its file, so a flow stops before training."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zooflow import config
from zooflow.data.safety import ImportRejected
from zooflow.tasks.base import RunContext
from zooflow.tasks.video import clips, demo_data
from zooflow.tasks.video.importer import import_videos
from zooflow.tasks.video.task import TASK
from zooflow.validation.runner import validate

PER_SPLIT = (("train", 5), ("val", 5))  # the smoke config's minimum per class and split


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A small demo set as a user's download: mp4 clips, one class as frame folders, and junk."""
    base = tmp_path_factory.mktemp("download") / "kinetics_small"
    demo_data.build_video(base, PER_SPLIT)
    for split in ("train", "val"):  # one class extracted to frame folders, as the book's tools do
        for clip in sorted((base / split / "up").glob("*.mp4")):
            frames = clips.read_segments(clip, clips.probe(clip).frames)
            folder = clip.with_suffix("")
            folder.mkdir()
            for t, pixels in enumerate(frames, 1):
                Image.fromarray(pixels).save(folder / f"image_{t:05d}.jpg", quality=90)
            clip.unlink()
    (base / ".DS_Store").write_bytes(b"\0")
    (base / "train" / "left" / "Thumbs.db").write_bytes(b"\0")
    (base / "__MACOSX").mkdir()
    (base / "__MACOSX" / "._x").write_bytes(b"\0")
    return base


def smoke_ctx(root: Path) -> RunContext:
    cfg = config.resolve("video", "eco-lite", "smoke", overrides={"params": {"segments": 8}})
    return RunContext(cfg, TASK.data_info(cfg, root), root)


def imported_and_validated(tmp_path: Path, source: Path, damage=None):
    data = tmp_path / "data"
    imported = import_videos(source, data / "video")
    if damage:
        damage(data / "video")
    ctx = smoke_ctx(data)
    return imported, validate(TASK.manifest(ctx), TASK.expectations(ctx), "video")


def test_a_folder_with_junk_and_frame_folders_imports_and_validates(source, tmp_path):
    imported, report = imported_and_validated(tmp_path, source)
    assert imported.classes == ("left", "right", "up", "down")  # the source's classes.txt, in its order
    assert sorted(imported.skipped) == [".DS_Store", "__MACOSX/", "train/left/Thumbs.db"]
    assert report.success, report.failures
    assert report.rows == 40
    frame_folders = sorted((tmp_path / "data" / "video" / "val" / "up").iterdir())
    assert frame_folders and all(folder.is_dir() for folder in frame_folders)


def _copy_of(source: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(source, copy, symlinks=True)
    return copy


def test_without_classes_txt_the_classes_are_the_train_folders_sorted(source, tmp_path):
    bare = _copy_of(source, tmp_path)
    (bare / "classes.txt").unlink()
    assert import_videos(bare, tmp_path / "out").classes == ("down", "left", "right", "up")


def test_the_import_refuses_links_and_missing_splits_by_name(source, tmp_path):
    linked = _copy_of(source, tmp_path)
    os.symlink("/etc/passwd", linked / "train" / "left" / "passwd.mp4")
    with pytest.raises(ImportRejected, match=r"train/left/passwd.mp4: is a symbolic link"):
        import_videos(linked, tmp_path / "out")
    one_split = tmp_path / "one_split"
    shutil.copytree(source / "train", one_split / "train")
    with pytest.raises(ImportRejected, match="no val folder"):
        import_videos(one_split, tmp_path / "out2")
    nested = _copy_of(source, tmp_path / "n")
    first = sorted((nested / "train" / "up").iterdir())[0]
    (first / "extra").mkdir()
    with pytest.raises(ImportRejected, match=rf"{first.name}/extra: a folder inside the frame folder"):
        import_videos(nested, tmp_path / "out3")
    lonely = _copy_of(source, tmp_path / "l")
    shutil.rmtree(lonely / "val" / "down")
    with pytest.raises(ImportRejected, match="'down' is in train but missing from val"):
        import_videos(lonely, tmp_path / "out4")


def _first(folder: Path, split: str, label: str) -> Path:
    return sorted((folder / split / label).iterdir())[0]


def _truncate(folder: Path) -> None:
    clip = _first(folder, "train", "left")
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size * 6 // 10])


def _text(folder: Path) -> None:
    (folder / "train" / "right" / "notes.mp4").write_text("a text file named like a clip")


def _short(folder: Path) -> None:
    frames = clips.read_segments(_first(folder, "val", "down"), 4)
    clips.write_clip(folder / "val" / "down" / "short.mkv", frames, fps=8)


def _audio_only(folder: Path) -> None:
    import av

    from tests.unit.test_video_clips import mux_silence

    with av.open(str(folder / "val" / "left" / "sound.mp4"), "w") as output:
        mux_silence(output)


def _leak(folder: Path) -> None:
    shutil.copy(_first(folder, "train", "right"), folder / "val" / "right" / "copied.mp4")


def _undeclared(folder: Path) -> None:
    (folder / "train" / "spin").mkdir()
    shutil.copy(_first(folder, "train", "left"), folder / "train" / "spin" / "a.mp4")


def _gap(folder: Path) -> None:
    (_first(folder, "val", "up") / "image_00005.jpg").unlink()


BROKEN = {
    # name: (damage, the file named, the expectation's column, the reason's text)
    "truncated mp4": (_truncate, "train/left/clip_0001.mp4", "readable", "truncated or corrupt"),
    "not a video": (_text, "train/right/notes.mp4", "readable", "cannot open as a video"),
    "fewer frames than segments": (_short, "val/down/short.mkv", "enough_frames", "4 frames, fewer than the 8"),
    "audio only": (_audio_only, "val/left/sound.mp4", "readable", "no video stream"),
    "same clip in two splits": (_leak, "val/right/copied.mp4", "in_other_split", ""),
    "undeclared class": (_undeclared, "train/spin/a.mp4", "class_declared", "not declared in classes.txt"),
    "frame folder with a gap": (_gap, "val/up/clip_0031", "readable", "frame 5 is missing"),
}


@pytest.mark.parametrize("variant", list(BROKEN))
def test_each_bad_clip_fails_validation_naming_the_file(source, tmp_path, variant):
    damage, path, column, text = BROKEN[variant]
    _, report = imported_and_validated(tmp_path, source, damage)
    assert report.success is False
    lines = [line for line in report.failures if f"video/{path}: " in line]
    assert lines, report.failures
    assert any(f"({column})" in line and text in line for line in lines), lines


def test_kinetics_class_folders_keep_kinetics_label_order_and_get_safe_names(tmp_path):
    """Folders named as Kinetics downloaders name them: the classes come out in Kinetics-400's
    label order (what a network trained on Kinetics predicts in), not sorted, and a name with
    parentheses is taken in its safe spelling, said in the notes."""
    from zooflow.tasks.video import kinetics

    source = tmp_path / "kinetics"
    frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    folders = ["skiing (not slalom or crosscountry)", "skiing crosscountry", "air_drumming", "hurling_(sport)"]
    for split in ("train", "val"):
        for folder in folders:
            (source / split / folder).mkdir(parents=True)
            clips.write_clip(source / split / folder / "a.mp4", frames, fps=8)
    imported = import_videos(source, tmp_path / "out")
    assert imported.classes == ("air_drumming", "hurling sport", "skiing not slalom or crosscountry",
                                "skiing crosscountry")
    order = [kinetics.categories().index(name) for name in ("air drumming", "hurling (sport)",
                                                            "skiing (not slalom or crosscountry)",
                                                            "skiing crosscountry")]
    assert order == sorted(order)
    assert any("'hurling_(sport)' is the Kinetics-400 class 'hurling sport'" in note for note in imported.notes)
    assert (tmp_path / "out" / "val" / "hurling sport" / "a.mp4").is_file()
    assert len(kinetics.categories()) == 400


def test_a_name_that_is_neither_safe_nor_kinetics_is_refused(tmp_path):
    source = tmp_path / "src"
    for split in ("train", "val"):
        (source / split / "jumping (high)").mkdir(parents=True)
    with pytest.raises(ImportRejected, match=r"the class name 'jumping \(high\)' is not allowed"):
        import_videos(source, tmp_path / "out")
