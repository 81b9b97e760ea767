"""Video clips as ECO reads them: segment sampling over a clip's frames, decoded with PyAV.

A clip is either a video file (any container and codec the FFmpeg inside PyAV decodes: mp4,
avi, mkv, webm, mov; h264, mpeg4, mjpeg, vp8/9, ...) or the book's pre-extracted frame folder
(``<clip>/image_00001.jpg``, ``image_00002.jpg``, ...). ECO splits the clip's ``n`` frames into
``N`` equal segments and takes one frame of each: a random one when training, the centre one
when evaluating (:func:`segment_indices`).

What the containers declare is a first guess, never trusted alone:

* Matroska and WebM declare no frame count at all, AVI files with B-frames carry scrambled
  timestamps, and a variable-frame-rate clip has no single frame duration. So frames are indexed
  by the order they decode in, never computed from timestamps or the frame rate.
* A truncated file can still declare all its frames. An mp4 whose index sits at the front
  fails while decoding (PyAV raises); mkv, webm and avi just stop early, silently. So a clip is
  checked by decoding it through (:func:`probe`), and the time its decoded frames span is
  compared with the duration the container declares.

Reading never holds the whole clip: :func:`read_segments` decodes frame by frame and converts
only the ``N`` frames it keeps to RGB. Sizes are bounded before decoding (``max_side`` per frame,
``max_frames`` per clip), so a crafted header cannot make a reader allocate without limit.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from zooflow.errors import InputRejected

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
# The book's frame folders (and the TSN/ECO tools that extract them): image_00001.jpg, ...
FRAME_FILE = re.compile(r"image_(\d{1,9})\.(jpg|jpeg|png)", re.IGNORECASE)
MAX_FRAMES = 100_000   # ~1 hour at 25 fps: more is a feature film or a forged header
MAX_SIDE = 4096        # 4K frames; larger ones are refused before anything is decoded
MAX_BYTES = 2 << 30    # a clip of more than 2 GiB is not a training clip


_BYTES = (bytes, bytearray, memoryview)  # a clip given as its encoded bytes (serving)


class ClipError(InputRejected):
    """A clip cannot be used; the message names it (file, folder or "video bytes") and says why."""


def segment_indices(frames: int, segments: int, train: bool, draw=None) -> list[int]:
    """The frame each of ``segments`` equal parts of ``[0, frames)`` contributes (TSN/ECO):
    part ``i`` is ``[i*frames//segments, (i+1)*frames//segments)``; its centre frame when
    evaluating, ``draw(low, high)`` (an integer in ``[low, high)``) when training."""
    if frames < segments:
        raise ValueError(f"{frames} frames cannot make {segments} segments")
    picks = []
    for part in range(segments):
        low, high = part * frames // segments, (part + 1) * frames // segments
        picks.append(int(draw(low, high)) if train else low + (high - low) // 2)
    return picks


def is_video_file(name: str) -> bool:
    """True for a file name with a video container's extension."""
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


# -- frame folders ------------------------------------------------------------------------------

def frame_files(folder: Path) -> list[Path]:
    """The frames of a frame folder in order (``image_00001.jpg`` ...). A ``ClipError`` when a
    file there is not a frame, a link, or the numbering does not run 1, 2, 3... without a gap
    (an extraction that stopped or lost frames)."""
    numbered: dict[int, Path] = {}
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() or not entry.is_file():
            raise ClipError(f"{entry}: a frame folder holds image files only (not a link or a folder)")
        match = FRAME_FILE.fullmatch(entry.name)
        if not match:
            raise ClipError(f"{entry}: not a frame file name (expected image_00001.jpg, image_00002.jpg, ...)")
        number = int(match.group(1))
        if number in numbered:
            raise ClipError(f"{entry}: frame {number} is also {numbered[number].name}")
        numbered[number] = entry
    if not numbered:
        raise ClipError(f"{folder}: an empty frame folder")
    expected = list(range(1, len(numbered) + 1))
    if sorted(numbered) != expected:
        missing = sorted(set(expected) - set(numbered))
        where = f"frame {missing[0]} is missing" if missing else f"numbering does not start at 1 ({min(numbered)})"
        raise ClipError(f"{folder}: {where}; a frame folder numbers its frames 1, 2, 3, ... without gaps")
    return [numbered[number] for number in expected]


def _read_frame(path: Path, max_side: int) -> np.ndarray:
    from zooflow.data import images

    try:
        return np.asarray(images.open_rgb(path, max_side))
    except Exception as error:  # noqa: BLE001 - any decoder failure on user bytes is this clip's fault
        raise ClipError(f"{path}: cannot read the frame ({type(error).__name__}: {error})") from None


# -- video files ---------------------------------------------------------------------------------

@dataclass
class _Pass:
    """What one decoding pass saw."""

    decoded: int
    kept: dict[int, np.ndarray]
    last_time: float | None


def _name(source) -> str:
    return "video bytes" if isinstance(source, _BYTES) else str(source)


def _is_frame_folder(source) -> bool:
    return not isinstance(source, _BYTES) and Path(source).is_dir() and not Path(source).is_symlink()


def _open(source):
    """An open PyAV container with its first video stream, or a ``ClipError`` naming the clip."""
    import av

    name = _name(source)
    if isinstance(source, _BYTES):
        if len(source) > MAX_BYTES:
            raise ClipError(f"{name}: {len(source)} bytes, more than the {MAX_BYTES} a clip may have")
        handle = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if path.is_symlink():
            raise ClipError(f"{name}: a symbolic link (data/ holds plain files only)")
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise ClipError(f"{name}: {path.stat().st_size} bytes, more than the {MAX_BYTES} a clip may have")
        handle = str(path)
    try:
        container = av.open(handle, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ClipError(f"{name}: cannot open as a video ({type(error).__name__}: {error})") from None
    if not container.streams.video:
        container.close()
        raise ClipError(f"{name}: no video stream (audio only, or not a video)")
    return container


def _check_size(name: str, stream, max_side: int) -> None:
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise ClipError(f"{name}: the video stream declares no frame size")
    if max(width, height) > max_side:
        raise ClipError(f"{name}: {width}x{height} frames, larger than max_side={max_side}")


def _declared_seconds(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # microseconds (AV_TIME_BASE)
    return None


def _frame_seconds(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return 1 / float(rate) if rate else None


def _decode(source, keep, max_side: int, max_frames: int) -> tuple[_Pass, dict]:
    """Decode the whole video stream once (one thread: loaders run one decoder per worker),
    converting only the frames whose decode-order index is in ``keep`` - a set, or a function
    of the frame count the stream declares (0 when it declares none) that returns one; what the
    stream declares comes back beside it."""
    import av

    name = _name(source)
    container = _open(source)
    try:
        stream = container.streams.video[0]
        _check_size(name, stream, max_side)
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        declared = {"frames": int(stream.frames or 0), "seconds": _declared_seconds(container, stream),
                    "frame_seconds": _frame_seconds(stream), "codec": stream.codec_context.name,
                    "container": container.format.name, "width": stream.codec_context.width,
                    "height": stream.codec_context.height, "audio": len(container.streams.audio) > 0}
        if callable(keep):
            keep = keep(declared["frames"])
        decoded, kept, last_time = 0, {}, None
        try:
            for frame in container.decode(stream):
                if decoded >= max_frames:
                    raise ClipError(f"{name}: more than max_frames={max_frames} frames")
                if frame.width > max_side or frame.height > max_side:
                    raise ClipError(f"{name}: frame {decoded} is {frame.width}x{frame.height}, larger than "
                                    f"max_side={max_side}")
                if decoded in keep:
                    kept[decoded] = frame.to_ndarray(format="rgb24")
                if frame.time is not None:
                    last_time = frame.time if last_time is None else max(last_time, frame.time)
                decoded += 1
        except av.error.FFmpegError as error:
            raise ClipError(f"{name}: truncated or corrupt, decoding failed after {decoded} frames "
                            f"({type(error).__name__}: {error})") from None
        return _Pass(decoded, kept, last_time), declared
    finally:
        container.close()


def _check_complete(name: str, seen: _Pass, declared: dict) -> None:
    """Silent truncation: the decoded frames span much less time than the container declares.
    Slack: two frames or 5 % of the duration, whichever is more (containers round durations and
    the last frame's length)."""
    total, step = declared["seconds"], declared["frame_seconds"]
    if not total or seen.last_time is None or not step:
        return
    covered = seen.last_time + step
    if covered + max(2 * step, 0.05 * total) < total:
        raise ClipError(f"{name}: truncated: {seen.decoded} decoded frames cover {covered:.2f} s of the "
                        f"{total:.2f} s the file declares")


@dataclass(frozen=True)
class ClipFacts:
    """A clip as validation sees it, after decoding it through."""

    kind: str                 # "file" or "frames"
    frames: int               # decoded frames (frame files for a folder)
    declared_frames: int      # what the container says (0: says nothing; a folder: its files)
    seconds: float            # declared duration (0: none declared; a folder: 0)
    width: int
    height: int
    codec: str
    container: str
    audio: bool


def probe(source, max_side: int = MAX_SIDE, max_frames: int = MAX_FRAMES) -> ClipFacts:
    """Decode a clip through (without converting frames) and check it is whole: a
    ``ClipError`` naming it when it does not open, has no video stream, is truncated or corrupt,
    or is too large. A frame folder is listed and every frame decoded."""
    if _is_frame_folder(source):
        files = frame_files(Path(source))
        if len(files) > max_frames:
            raise ClipError(f"{source}: {len(files)} frames, more than max_frames={max_frames}")
        shapes = {_read_frame(file, max_side).shape[:2] for file in files}
        if len(shapes) > 1:
            raise ClipError(f"{source}: its frames differ in size ({sorted(shapes)})")
        height, width = shapes.pop()
        return ClipFacts("frames", len(files), len(files), 0.0, width, height, "image", "folder", False)
    seen, declared = _decode(source, set(), max_side, max_frames)
    if seen.decoded == 0:
        raise ClipError(f"{_name(source)}: no frame decodes (zero duration or an empty stream)")
    _check_complete(_name(source), seen, declared)
    return ClipFacts("file", seen.decoded, declared["frames"], round(declared["seconds"] or 0.0, 3),
                     declared["width"], declared["height"], declared["codec"], declared["container"],
                     declared["audio"])


def read_segments(source, segments: int, train: bool = False, draw=None, max_side: int = MAX_SIDE,
                  max_frames: int = MAX_FRAMES) -> np.ndarray:
    """The ``segments`` sampled frames of a clip (a file, a frame folder or video bytes) as
    uint8 ``[N, H, W, 3]`` RGB (see :func:`segment_indices`; ``draw(low, high)`` picks training
    frames). A file is decoded once when its declared frame count is right, twice when it is
    missing or wrong (the first pass counts)."""
    name = _name(source)
    if _is_frame_folder(source):
        files = frame_files(Path(source))
        if len(files) < segments:
            raise ClipError(f"{name}: {len(files)} frames, fewer than the {segments} segments sampled")
        return np.stack([_read_frame(files[i], max_side) for i in segment_indices(len(files), segments, train, draw)])
    picks: list[int] = []

    def from_declared(declared: int) -> set[int]:
        # Picked once the container is open, so trusting its count costs no extra open.
        picks[:] = segment_indices(declared, segments, train, draw) if declared >= segments else []
        return set(picks)

    seen, facts = _decode(source, from_declared, max_side, max_frames)
    if seen.decoded != facts["frames"] or not picks:
        if seen.decoded < segments:
            raise ClipError(f"{name}: {seen.decoded} decoded frames, fewer than the {segments} segments sampled")
        picks = segment_indices(seen.decoded, segments, train, draw)
        seen, facts = _decode(source, set(picks), max_side, max_frames)
    _check_complete(name, seen, facts)
    shapes = {seen.kept[i].shape for i in picks}
    if len(shapes) > 1:  # a stream that changes resolution midway: bring every frame to the first's
        from PIL import Image

        height, width = seen.kept[picks[0]].shape[:2]
        for i in picks:
            seen.kept[i] = np.asarray(Image.fromarray(seen.kept[i]).resize((width, height)))
    return np.stack([seen.kept[i] for i in picks])


# -- writing (the demo data, tests) -------------------------------------------------------------------

# Encoder settings that give the same bytes on every run (found with av 18.1.0's x264): x264's
# macroblock-tree rate control read state that varied with the process's history, so it is off
# and the encoder runs one thread; frames carry explicit timestamps; the muxer writes no
# version string or random ids (``+bitexact``). mp4 puts its index first (``+faststart``) so a
# truncated file fails loudly.
ENCODERS = {
    "libx264": ({"preset": "medium", "crf": "18", "x264-params": "threads=1:mbtree=0"}, "yuv420p"),
    "mpeg4": ({"qscale": "3"}, "yuv420p"),
    "mjpeg": ({}, "yuvj420p"),
    "libvpx-vp9": ({"deadline": "good", "cpu-used": "4", "row-mt": "0", "crf": "30", "b": "0"}, "yuv420p"),
}


def write_clip(target, frames: np.ndarray, fps: int = 8, codec: str = "libx264", container: str | None = None) -> None:
    """Encode uint8 RGB frames ``[T, H, W, 3]`` (even H and W) to ``target`` (a path, or a
    binary file object with ``container`` naming the format), deterministically."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"4:2:0 video needs an even frame size, got {frames.shape[2]}x{frames.shape[1]}")
    options, pixel_format = ENCODERS[codec]
    name = container or Path(target).suffix.lstrip(".")
    # +faststart rewrites the file to move the index to the front: a path only, not a stream.
    to_file = isinstance(target, (str, Path))
    muxer = {"fflags": "+bitexact"} | ({"movflags": "+faststart"} if name in ("mp4", "mov") and to_file else {})
    time_base = Fraction(1, fps)
    with av.open(str(target) if to_file else target, "w", format=container, options=muxer) as output:
        stream = output.add_stream(codec, rate=fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = index, time_base
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)


def encode(frames: np.ndarray, fps: int = 8, codec: str = "libx264", container: str = "mp4") -> bytes:
    """:func:`write_clip` into memory: the clip's bytes."""
    buffer = io.BytesIO()
    write_clip(buffer, frames, fps, codec, container)
    return buffer.getvalue()
