"""Chapter 9's task object (``tasks/video/task.py``) on a reduced demo set with the smoke
profile's tiny ECO networks: batches, the single-frame view, scoring, the baselines, the card
figure and the served answer."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from zooflow import config
from zooflow.models import eco
from zooflow.tasks.base import RunContext
from zooflow.tasks.video import clips, demo_data, layout
from zooflow.tasks.video.served import answer_table, video_items
from zooflow.tasks.video.task import TASK, transforms

SEGMENTS, SIZE = 4, 64


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    demo_data.build_video(root / "video", (("train", 3), ("val", 2)))
    return root


def make_ctx(data_root: Path, model: str = "eco-lite", **params) -> RunContext:
    cfg = config.resolve("video", model, "smoke",
                         overrides={"num_workers": 0, "max_eval_samples": None,
                                    "params": {"segments": SEGMENTS, "input_size": SIZE, **params}})
    return RunContext(cfg, TASK.data_info(cfg, data_root), data_root)


def test_the_demo_clips_move_in_the_direction_they_are_labelled(data_root):
    """The class is the motion: the digit's ink moves the labelled way between first and last frame."""
    for label, axis, sign in (("left", 1, -1), ("right", 1, 1), ("up", 0, -1), ("down", 0, 1)):
        for clip in sorted((data_root / "video" / "train" / label).glob("*.mp4")):
            frames = clips.read_segments(clip, demo_data.FRAMES).astype(np.float64)
            still = np.median(frames, axis=0)  # the background: the digit passes, the photo stays
            # The digit's pixels: far from the background (H.264 noise elsewhere is a few levels).
            first, last = ((np.abs(frames[i] - still).sum(-1) > 90).astype(np.float64) for i in (0, -1))
            centre = [np.average(np.indices(first.shape)[axis], weights=weight) for weight in (first, last)]
            assert sign * (centre[1] - centre[0]) > demo_data.TRAVEL * 0.75, (clip, centre)


def test_the_middle_frame_position_does_not_depend_on_the_class():
    """What the single-frame baseline sees carries no class: every direction puts the digit's
    middle-frame corner in the same range."""
    ranges = {}
    for direction in demo_data.DIRECTIONS:
        rng = np.random.default_rng(0)
        middles = [demo_data._path(rng, direction)[demo_data.FRAMES // 2] for _ in range(400)]
        ranges[direction] = (min(min(m) for m in middles), max(max(m) for m in middles))
    assert len(set(ranges.values())) == 1, ranges


def test_batches_are_clips_of_segments_frames(data_root):
    ctx = make_ctx(data_root)
    loaders = TASK.loaders(ctx)
    clip_batch, labels = next(iter(loaders.train))
    assert clip_batch.shape == (ctx.cfg.batch_size, SEGMENTS, 3, SIZE, SIZE) and clip_batch.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert len(loaders.val.dataset) == 8


def test_the_single_frame_view_repeats_one_frame(data_root):
    ctx = make_ctx(data_root)
    for train in (True, False):
        clip = layout.VideoClips(ctx.folder, "val", ctx.info["classes"], SEGMENTS, train, single_frame=True).frames(0)
        assert all(torch.equal(clip[0], frame) for frame in clip)
    moving = layout.VideoClips(ctx.folder, "val", ctx.info["classes"], SEGMENTS, False).frames(0)
    assert not torch.equal(moving[0], moving[-1])
    middle = layout.VideoClips(ctx.folder, "val", ctx.info["classes"], SEGMENTS, False, single_frame=True).frames(0)
    every = layout.VideoClips(ctx.folder, "val", ctx.info["classes"], demo_data.FRAMES, False).frames(0)
    assert torch.equal(middle[0], every[demo_data.FRAMES // 2])  # the clip's middle frame


def test_training_frames_vary_and_scoring_frames_do_not(data_root):
    ctx = make_ctx(data_root)
    scoring = layout.VideoClips(ctx.folder, "train", ctx.info["classes"], SEGMENTS, False)
    assert torch.equal(scoring.frames(0), scoring.frames(0))
    training = layout.VideoClips(ctx.folder, "train", ctx.info["classes"], SEGMENTS, True)
    torch.manual_seed(0)
    draws = [training.frames(0) for _ in range(6)]
    assert any(not torch.equal(draws[0], other) for other in draws[1:])


def test_caffe_input_is_bgr_0_255_less_the_mean():
    cfg = config.resolve("video", "eco-lite", "smoke", overrides={"params": {"input_format": "caffe", "input_size": 64}})
    from torchvision import tv_tensors

    red = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    red[:, 0] = 255
    out = transforms(cfg, train=False)(tv_tensors.Video(red))
    assert out[0, :, 10, 10].tolist() == pytest.approx([0 - eco.CAFFE_BGR_MEAN[0], 0 - eco.CAFFE_BGR_MEAN[1],
                                                        255 - eco.CAFFE_BGR_MEAN[2]])


def test_scores_have_top1_top5_and_per_class_recall(data_root):
    ctx = make_ctx(data_root)
    probabilities = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    targets = torch.tensor([0, 0, 3])
    scores = TASK.score((probabilities, targets), ctx)
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["top5_accuracy"] == 1.0  # 4 classes: the top 4 always hold the truth
    assert scores["recall_left"] == pytest.approx(0.5) and scores["recall_down"] == 0.0


def test_the_baselines_are_the_majority_class_and_a_trained_single_frame_model(data_root):
    ctx = make_ctx(data_root)
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    baseline = TASK.baseline(ctx)
    assert torch.equal(torch.random.get_rng_state(), before), "the baseline's training leaves the caller's RNG alone"
    assert set(baseline) == {"majority", "single_frame"}
    assert baseline["majority"]["accuracy"] == pytest.approx(0.25)  # balanced val set
    assert 0.0 <= baseline["single_frame"]["accuracy"] <= 1.0 and "top5_accuracy" in baseline["single_frame"]
    assert set(TASK.baseline_description) == set(baseline)


def test_the_card_figures_are_written(data_root, tmp_path):
    ctx = make_ctx(data_root)
    model = TASK.build_model(ctx).eval()
    predictions = TASK.predict_split(model, ctx)
    paths = TASK.examples(model, ctx, predictions, tmp_path)
    assert [path.name for path in paths] == ["confusion_matrix.png", "validation_clips.png"]
    assert all(path.stat().st_size > 10_000 for path in paths)


def test_a_served_model_answers_top_k_for_bytes_and_base64(data_root):
    ctx = make_ctx(data_root)
    model = TASK.build_model(ctx).eval()
    clip = next((data_root / "video" / "val" / "left").glob("*.mp4")).read_bytes()
    as_text = base64.b64encode(clip).decode()
    table = TASK.predict(model, ctx, pd.DataFrame({"video": [clip, as_text, as_text.encode()]}))
    assert list(table.columns) == ["label", "probability"] + [f"{k}_{i}" for i in range(1, 5)
                                                             for k in ("label", "probability")]
    assert len(table) == 3 and table.iloc[0].equals(table.iloc[1]) and table.iloc[1].equals(table.iloc[2])
    row = table.iloc[0]
    assert row["label"] == row["label_1"] and sorted(row[[f"label_{i}" for i in range(1, 5)]]) == sorted(ctx.info["classes"])
    probabilities = [row[f"probability_{i}"] for i in range(1, 5)]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(1, abs=1e-5)


def test_a_served_model_names_what_is_wrong_with_a_clip(data_root):
    ctx = make_ctx(data_root)
    model = TASK.build_model(ctx).eval()
    with pytest.raises(clips.ClipError, match="video bytes: cannot open as a video"):
        TASK.predict(model, ctx, pd.DataFrame({"video": [b"\x00\x01 surely not a video"]}))
    with pytest.raises(ValueError, match="base64 of the clip file's bytes"):
        video_items(["not base64 !!"])
    with pytest.raises(ValueError, match="expected a column 'video'"):
        video_items(pd.DataFrame({"image": [b"x"]}))


def test_the_answer_table_orders_classes_by_probability():
    table = answer_table(np.array([[0.1, 0.6, 0.3]]), ["a", "b", "c"])
    assert table.iloc[0].tolist() == ["b", 0.6, "b", 0.6, "c", 0.3, "a", 0.1]


def test_epochs_0_registers_a_pretrained_state_dict_as_it_is(data_root, tmp_path):
    """The book's usage: weights by path, evaluated without training (the single-frame baseline
    then scores the same weights on one frame repeated); a missing file is an error, never
    random weights."""
    from zooflow.models.pretrained import PretrainedWeightsMissing
    from zooflow.training.engine import fit

    ctx = make_ctx(data_root)
    torch.manual_seed(3)
    source = TASK.build_model(ctx)
    path = tmp_path / "eco_lite.pt"
    torch.save(source.state_dict(), path)
    loaded_ctx = make_ctx(data_root)
    loaded_ctx = RunContext(loaded_ctx.cfg.model_copy(update={"pretrained": str(path), "epochs": 0}),
                            loaded_ctx.info, data_root)
    model = TASK.build_model(loaded_ctx)
    assert fit(TASK, model, loaded_ctx, tmp_path / "checkpoints", show_progress=False).epochs == 0
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
    assert set(TASK.baseline(loaded_ctx)) == {"majority", "single_frame"}
    missing = RunContext(loaded_ctx.cfg.model_copy(update={"pretrained": str(tmp_path / "nope.pt")}),
                         loaded_ctx.info, data_root)
    with pytest.raises(PretrainedWeightsMissing, match="nope.pt"):
        TASK.build_model(missing)


def test_clips_decode_in_dataloader_workers_as_in_the_main_process(data_root):
    """Each worker opens its own decoder (PyAV after fork): the scored batches are the same."""
    in_main = TASK.loaders(make_ctx(data_root)).val
    ctx = make_ctx(data_root)
    in_workers = TASK.loaders(RunContext(ctx.cfg.model_copy(update={"num_workers": 2}), ctx.info, data_root)).val
    for (clips_main, labels_main), (clips_workers, labels_workers) in zip(in_main, in_workers):
        assert torch.equal(clips_main, clips_workers) and torch.equal(labels_main, labels_workers)
