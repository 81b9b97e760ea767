"""Chapter 9's clip reading (``tasks/video/clips.py``): segment sampling, every container and
codec the task accepts, frame folders, and each way a clip can be bad - checked on real files
that PyAV writes here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zooflow.errors import InputRejected
from zooflow.tasks.video import clips

FRAMES, SIDE = 24, 64


def moving_square(frames: int = FRAMES, side: int = SIDE) -> np.ndarray:
    """A white square moving right over a grey ramp: frame t has the square at x = 2t, so a
    decoded frame tells its own index (lossy codecs keep a big square's position)."""
    ramp = np.tile(np.linspace(40, 120, side, dtype=np.uint8)[None, :, None], (side, 1, 3))
    clip = np.repeat(ramp[None], frames, axis=0)
    for t in range(frames):
        clip[t, 20:36, 2 * t:2 * t + 16] = 255
    return clip


def square_position(frame: np.ndarray) -> int:
    """Where the square of ``moving_square`` is: the first column that is mostly white."""
    bright = (frame[20:36, :, :].mean(axis=(0, 2)) > 200)
    return int(np.argmax(bright))


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """The same 24-frame clip in each container/codec pair the task promises to read."""
    folder = tmp_path_factory.mktemp("clips")
    pairs = {"h264.mp4": "libx264", "h264.mkv": "libx264", "mpeg4.avi": "mpeg4", "mjpeg.avi": "mjpeg",
             "vp9.webm": "libvpx-vp9", "h264.avi": "libx264"}
    found = {}
    for name, codec in pairs.items():
        clips.write_clip(folder / name, moving_square(), fps=8, codec=codec)
        found[name] = folder / name
    return found


def test_segments_are_equal_parts_with_centre_or_random_frames():
    assert clips.segment_indices(16, 4, train=False) == [2, 6, 10, 14]
    assert clips.segment_indices(10, 3, train=False) == [1, 4, 8]  # parts [0,3) [3,6) [6,10)
    assert clips.segment_indices(4, 4, train=False) == [0, 1, 2, 3]
    rng = np.random.default_rng(0)
    for _ in range(50):
        picks = clips.segment_indices(17, 4, True, lambda low, high: rng.integers(low, high))
        assert [low <= pick < high for pick, (low, high) in zip(picks, [(0, 4), (4, 8), (8, 12), (12, 17)])] == [True] * 4
    with pytest.raises(ValueError, match="3 frames cannot make 4 segments"):
        clips.segment_indices(3, 4, train=False)


@pytest.mark.parametrize("name", ["h264.mp4", "h264.mkv", "mpeg4.avi", "mjpeg.avi", "vp9.webm", "h264.avi"])
def test_every_container_decodes_to_the_sampled_frames(written, name):
    """mkv/webm declare no frame count and x264 in AVI scrambles timestamps: frames are still the
    ones at the sampled decode positions."""
    facts = clips.probe(written[name])
    assert (facts.kind, facts.frames, facts.width, facts.height) == ("file", FRAMES, SIDE, SIDE)
    frames = clips.read_segments(written[name], 6)
    assert frames.shape == (6, SIDE, SIDE, 3) and frames.dtype == np.uint8
    expected = clips.segment_indices(FRAMES, 6, train=False)
    assert [square_position(frame) for frame in frames] == pytest.approx([2 * i for i in expected], abs=1)


def test_matroska_declares_no_frames_and_is_counted_by_decoding(written):
    assert clips.probe(written["h264.mkv"]).declared_frames == 0
    assert clips.probe(written["h264.mp4"]).declared_frames == FRAMES


def test_reading_from_bytes_equals_reading_the_file(written):
    path = written["h264.mp4"]
    assert np.array_equal(clips.read_segments(path.read_bytes(), 5), clips.read_segments(path, 5))


def test_the_demo_encoding_is_byte_identical_run_to_run(tmp_path):
    clip = moving_square()
    first = clips.encode(clip)
    clips.encode(moving_square(30, 48))  # other work in between must not change the bytes
    assert hashlib.sha256(clips.encode(clip)).hexdigest() == hashlib.sha256(first).hexdigest()


def _chopped(path: Path, target: Path, keep: float = 0.6) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[:int(len(data) * keep)])
    return target


@pytest.mark.parametrize("name", ["h264.mp4", "h264.mkv", "vp9.webm", "mpeg4.avi", "mjpeg.avi"])
def test_a_truncated_clip_is_refused_by_name(written, tmp_path, name):
    """mp4 fails while decoding; mkv, webm and AVI stop early without an error and are caught by
    comparing the decoded span with the declared duration."""
    bad = _chopped(written[name], tmp_path / f"cut-{name}")
    with pytest.raises(clips.ClipError, match=rf"{bad.name}: (truncated|cannot open)"):
        clips.probe(bad)
    with pytest.raises(clips.ClipError, match=bad.name):
        clips.read_segments(bad, 4)


def test_bad_inputs_each_get_one_message_naming_them(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(clips.ClipError, match="notes.mp4: cannot open as a video"):
        clips.probe(text)
    with pytest.raises(clips.ClipError, match="missing.mp4: cannot open"):
        clips.probe(tmp_path / "missing.mp4")
    short = tmp_path / "short.mp4"
    clips.write_clip(short, moving_square(3), fps=8)
    with pytest.raises(clips.ClipError, match="short.mp4: 3 decoded frames, fewer than the 8 segments"):
        clips.read_segments(short, 8)
    assert issubclass(clips.ClipError, InputRejected)  # the CLI prints it as one message


def mux_silence(output) -> None:
    """Add a mono AAC track holding one frame of silence to an open output container."""
    import av

    stream = output.add_stream("aac", rate=16000)
    samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
    samples.sample_rate = 16000
    for packet in [*stream.encode(samples), *stream.encode(None)]:
        output.mux(packet)


def test_an_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "speech.mp4"
    with av.open(str(path), "w") as output:
        mux_silence(output)
    with pytest.raises(clips.ClipError, match="speech.mp4: no video stream"):
        clips.probe(path)


def test_a_clip_with_an_audio_track_is_read_for_its_video(tmp_path):
    import av

    path = tmp_path / "with_sound.mp4"
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=8)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        audio = output.add_stream("aac", rate=16000)
        for t, pixels in enumerate(moving_square()):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = t
            output.mux(video.encode(frame))
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 2000), dtype=np.float32), format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 16000, t * 2000
            output.mux(audio.encode(sound))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    facts = clips.probe(path)
    assert facts.audio and facts.frames == FRAMES
    assert clips.read_segments(path, 4).shape == (4, SIDE, SIDE, 3)


def test_frames_larger_than_max_side_are_refused_before_decoding(written):
    with pytest.raises(clips.ClipError, match="64x64 frames, larger than max_side=32"):
        clips.probe(written["h264.mp4"], max_side=32)


def test_too_many_frames_are_refused(written):
    with pytest.raises(clips.ClipError, match="more than max_frames=10"):
        clips.probe(written["h264.mkv"], max_frames=10)


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for t, pixels in enumerate(frames, 1):
        Image.fromarray(pixels).save(folder / f"image_{t:05d}.jpg", quality=95)
    return folder


def test_a_frame_folder_is_read_like_a_file(tmp_path):
    folder = write_frame_folder(tmp_path / "clip_a", moving_square())
    facts = clips.probe(folder)
    assert (facts.kind, facts.frames, facts.width) == ("frames", FRAMES, SIDE)
    frames = clips.read_segments(folder, 4)
    assert [square_position(frame) for frame in frames] == [2 * i for i in clips.segment_indices(FRAMES, 4, False)]


def test_a_frame_folder_with_a_gap_or_a_stray_file_is_refused(tmp_path):
    folder = write_frame_folder(tmp_path / "gap", moving_square(6))
    (folder / "image_00003.jpg").unlink()
    with pytest.raises(clips.ClipError, match="gap: frame 3 is missing"):
        clips.probe(folder)
    other = write_frame_folder(tmp_path / "stray", moving_square(6))
    (other / "notes.txt").write_text("x")
    with pytest.raises(clips.ClipError, match="notes.txt: not a frame file name"):
        clips.probe(other)
    broken = write_frame_folder(tmp_path / "broken", moving_square(6))
    (broken / "image_00002.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(clips.ClipError, match="image_00002.jpg: cannot read the frame"):
        clips.probe(broken)


def test_a_variable_frame_rate_clip_is_whole_and_indexed_by_decode_order(tmp_path):
    """Frames 40, 300 and 90 ms apart (a phone's clip): not mistaken for a truncated one, and the
    sampled frames are the ones at their decode positions, whatever their timestamps."""
    import av
    from fractions import Fraction

    path = tmp_path / "vfr.mkv"
    gaps = [40, 300, 90] * 8  # milliseconds
    stamps = np.cumsum([0] + gaps[:FRAMES - 1])
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=25)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for pixels, stamp in zip(moving_square(), stamps):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = int(stamp), Fraction(1, 1000)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    assert clips.probe(path).frames == FRAMES
    frames = clips.read_segments(path, 6)
    assert [square_position(f) for f in frames] == pytest.approx([2 * i for i in clips.segment_indices(FRAMES, 6, False)], abs=1)


def test_a_clip_with_a_video_stream_but_no_frames_is_refused(tmp_path):
    """Zero duration: the container opens and declares a video stream (beside a sound track that
    has packets, so the file is written), and no frame decodes."""
    import av

    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=8)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        mux_silence(output)
    with pytest.raises(clips.ClipError, match=r"empty.mkv: no frame decodes \(zero duration"):
        clips.probe(path)
