"""Chapter 4's task object (``tasks/pose/task.py``) through every contract method on a reduced
demo set (8 training, 4 validation images), with the smoke profiles' tiny networks
(``configs/pose.yaml`` resolved as a run would, a few params overridden).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from zooflow import config
from zooflow.config import RunConfig
from zooflow.data.safety import Imported
from zooflow.tasks.base import RunContext, evaluate
from zooflow.tasks.params import PoseParams
from zooflow.tasks.pose import coco, demo_data, transforms
from zooflow.tasks.pose.decode import to_coco_results
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS
from zooflow.tasks.pose.task import (ANSWER_COLUMNS, ANSWER_TYPES, TASK, Predictions, make_targets,
                                     people_in, pose_loss)
from zooflow.training.engine import Step, fit

FOLDER = "pose"
SIZE = 64  # the tiny networks' square: 8 x 8 maps
SHOULDERS = (COCO_KEYPOINTS.index("left_shoulder"), COCO_KEYPOINTS.index("right_shoulder"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    demo_data.build_pose(root / FOLDER, (("train", 8), ("val", 4)))
    return root


def make_cfg(model: str = "mobilenet-openpose", pretrained: str | None = None, **params) -> RunConfig:
    """The model's smoke config from ``configs/pose.yaml`` at a 64 px square, ``params`` overriding."""
    overrides: dict = {"num_workers": 0, "params": {"input_size": SIZE, **params}}
    if pretrained is not None:
        overrides["pretrained"] = pretrained
    return config.resolve("pose", model, "smoke", overrides=overrides)


def make_ctx(data_root: Path, **kwargs) -> RunContext:
    cfg = make_cfg(**kwargs)
    return RunContext(cfg, TASK.data_info(cfg, data_root), data_root)


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


# -- the contract's facts and the data ------------------------------------------------------------

def test_task_facts_and_data_info(data_root):
    assert (TASK.name, TASK.primary_metric, TASK.goal) == ("pose", "oks_ap", "max")
    assert TASK.mixed_precision and TASK.channels_last and "mean pose" in TASK.baseline_description
    info = TASK.data_info(make_cfg(), data_root)
    assert info == {"keypoints": list(COCO_KEYPOINTS)}
    assert TASK.not_comparable(info, dict(info)) is None
    assert "other keypoints" in TASK.not_comparable({"keypoints": ["nose"]}, info)
    assert TASK.metric_labels(info) == []


def test_params_refuse_a_size_off_the_stride_and_scales_out_of_order():
    with pytest.raises(ValueError, match="multiple of 8"):
        PoseParams(input_size=100)
    with pytest.raises(ValueError, match="scale_min"):
        PoseParams(scale_min=1.2, scale_max=1.0)
    assert PoseParams().input_size == 368 and PoseParams().sigma == 7.0 and PoseParams().limb_width == 8.0


def test_manifest_expectations_and_import(data_root, tmp_path):
    ctx = make_ctx(data_root)
    manifest = TASK.manifest(ctx)
    assert len(manifest) and manifest[list(coco.FLAGS)].all().all()
    assert set(manifest["keypoints_split"]) >= {"train", "val"}
    assert TASK.expectations(ctx)
    imported = TASK.import_data(data_root / FOLDER, tmp_path / "staged")
    assert isinstance(imported, Imported) and tuple(imported.classes) == ("person",)
    assert sorted(p.name for p in (tmp_path / "staged" / "val").iterdir()) == \
        sorted(p.name for p in (data_root / FOLDER / "val").iterdir())


def test_loaders_give_images_targets_and_masks_at_stride_8(data_root):
    torch.manual_seed(0)
    loaders = TASK.loaders(make_ctx(data_root))
    for loader in (loaders.train, loaders.val):
        images, heatmaps, pafs, mask = next(iter(loader))
        assert images.shape == (2, 3, SIZE, SIZE) and images.dtype == torch.float32
        assert heatmaps.shape == (2, 19, SIZE // 8, SIZE // 8) and pafs.shape == (2, 38, SIZE // 8, SIZE // 8)
        assert mask.shape == (2, SIZE // 8, SIZE // 8) and set(mask.unique().tolist()) <= {0.0, 1.0}
        assert heatmaps[:, :18].amax() > 0.5  # someone's part is in the square
    assert len(loaders.train.dataset) == 8 and len(loaders.val.dataset) == 4
    # the letterbox pads the square: padding cells are masked out of the validation loss
    _, _, _, mask = next(iter(loaders.val))
    assert (mask == 0).any()


# -- training -------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, pretrained", [("mobilenet-openpose", "imagenet"), ("openpose", "none")])
def test_a_training_step_gives_a_finite_loss_whose_update_changes_the_weights(data_root, model, pretrained):
    torch.manual_seed(0)
    ctx = make_ctx(data_root, model=model, pretrained=pretrained)
    model = TASK.build_model(ctx)
    assert len(model.stages) == 2
    optimizers = TASK.optimizers(model, ctx)
    batch = next(iter(TASK.loaders(ctx).train))
    model.train()
    before = weights(model)
    step = TASK.training_step(model, batch, ctx, torch.device("cpu"), optimizers)
    assert isinstance(step, Step) and step.samples == 2 and step.loss.dim() == 0
    assert math.isfinite(step.loss.item()) and step.loss.requires_grad
    assert set(step.sums) == {"paf_loss", "heatmap_loss"}
    assert step.sums["paf_loss"] + step.sums["heatmap_loss"] == pytest.approx(2 * step.loss.item(), rel=1e-5)
    optimizers["model"].zero_grad()
    step.loss.backward()
    optimizers["model"].step()
    assert any(not torch.equal(a, b) for a, b in zip(before, weights(model)))
    model.eval()
    with torch.no_grad():
        checked = TASK.validation_step(model, next(iter(TASK.loaders(ctx).val)), ctx, torch.device("cpu"))
    assert math.isfinite(checked.loss.item()) and set(checked.sums) == {"paf_loss", "heatmap_loss"}


def test_the_engine_trains_the_task_end_to_end(data_root, tmp_path):
    """``training.engine.fit`` on the task: one capped epoch, validation figures reported."""
    torch.manual_seed(0)
    ctx = make_ctx(data_root)
    model = TASK.build_model(ctx)
    result = fit(TASK, model, ctx, tmp_path / "checkpoints", show_progress=False)
    assert result.finished and len(result.history) == 1
    figures = result.history[0]
    assert {"train_loss", "train_paf_loss", "train_heatmap_loss", "val_loss", "val_paf_loss",
            "val_heatmap_loss"} <= set(figures)
    assert all(math.isfinite(figures[key]) for key in ("train_loss", "val_loss"))


def test_the_loss_is_blind_to_masked_cells_and_sums_every_stage():
    generator = torch.Generator().manual_seed(0)
    heatmaps, pafs = torch.rand(2, 19, 6, 6, generator=generator), torch.randn(2, 38, 6, 6, generator=generator)
    mask = torch.ones(2, 6, 6)
    mask[0, :3] = 0
    mask[1, :, 4:] = 0
    stages = [(torch.randn(2, 38, 6, 6, generator=generator), torch.rand(2, 19, 6, 6, generator=generator))
              for _ in range(3)]
    loss, paf_part, heatmap_part = pose_loss(stages, heatmaps, pafs, mask)
    hidden = (mask == 0)[:, None]
    moved = [(paf + 100 * hidden, heat - 50 * hidden) for paf, heat in stages]
    assert torch.equal(pose_loss(moved, heatmaps, pafs, mask)[0], loss)
    shown = [(paf + 0.5 * (mask == 1)[:, None], heat) for paf, heat in stages]
    assert pose_loss(shown, heatmaps, pafs, mask)[0] > loss
    # the book's mean over every cell of every channel and image, one term per stage and branch
    expected = sum(((paf - pafs) ** 2 * mask[:, None]).mean() + ((heat - heatmaps) ** 2 * mask[:, None]).mean()
                   for paf, heat in stages)
    assert loss.item() == pytest.approx(expected.item())
    assert loss.item() == pytest.approx((paf_part + heatmap_part).item())
    assert pose_loss(stages, heatmaps, pafs, torch.zeros(2, 6, 6))[0].item() == 0.0


# -- evaluation -----------------------------------------------------------------------------------

def test_predict_split_score_baseline_and_examples(data_root, tmp_path):
    torch.manual_seed(0)
    ctx = make_ctx(data_root, peak_threshold=0.01, min_score=0.0)  # a random net's weak peaks still decode
    model = TASK.build_model(ctx)
    predictions = TASK.predict_split(model, ctx)
    assert isinstance(predictions, Predictions) and len(predictions.image_ids) == 4
    assert predictions.maps["heatmaps"].shape == (19, SIZE // 8, SIZE // 8)
    assert predictions.maps["image"].shape == (SIZE, SIZE, 3) and predictions.maps["image"].dtype == np.uint8
    scores = TASK.score(predictions, ctx)
    assert 0.0 <= scores["oks_ap"] <= 1.0 and {"oks_ap50", "oks_ap75", "oks_ar"} <= set(scores)
    assert evaluate(TASK, model, ctx)["oks_ap"] == pytest.approx(scores["oks_ap"])
    baseline = TASK.baseline(ctx)
    assert 0.0 < baseline["oks_ap"] <= 1.0
    written = TASK.examples(model, ctx, predictions, tmp_path / "card")
    assert [p.name for p in written] == ["validation_skeletons.png", "validation_maps.png", "oks_ap.html"]
    assert all(p.stat().st_size > 0 for p in written)
    assert "mean-pose baseline" in written[-1].read_text()


def truth_predictions(ctx: RunContext) -> Predictions:
    """Predictions made from the validation images' own targets: the ground truth's heatmaps and
    PAFs, decoded and mapped back exactly as ``predict_split`` does with a network's."""
    params = ctx.cfg.params
    source = TASK._split(ctx, "val")
    prepare = transforms.evaluation(params.input_size)
    results = []
    for index in range(len(source)):
        image, target = source[index]
        _, keypoints, ignore, placement = prepare(image, target)
        heatmaps, pafs, _ = make_targets(keypoints, ignore, params.input_size, params)
        results += to_coco_results(people_in(pafs, heatmaps, placement, params), source.image_ids[index])
    return Predictions(list(range(len(source))), list(source.image_ids), results)


def test_the_targets_decoded_score_near_one_through_the_tasks_scoring(data_root):
    """Targets -> decode -> to_original -> COCOeval agree end to end: the true maps, decoded,
    score near 1. (OpenPose's limb tree joins the head and legs to the body through the neck,
    which needs both shoulders; the demo set keeps every shoulder inside the image, see
    ``demo_data``, so every person there can be decoded whole.)"""
    ctx = make_ctx(data_root, input_size=368)
    source = TASK._split(ctx, "val")
    assert all((source[i][1]["keypoints"][:, SHOULDERS, 2] > 0).all() for i in range(len(source)))
    assert TASK.score(truth_predictions(ctx), ctx)["oks_ap"] > 0.95


# -- serving --------------------------------------------------------------------------------------

class Oracle(nn.Module):
    """A "network" that answers each batch with given maps (a parameter only for the device)."""

    def __init__(self, answers: list[tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.answers = answers

    def forward(self, images):
        pafs, heatmaps = self.answers.pop(0)
        return pafs, heatmaps, [(pafs, heatmaps)]


def test_predict_answers_image_bytes_with_a_row_per_person(data_root):
    ctx = make_ctx(data_root, input_size=368)
    params = ctx.cfg.params
    source = TASK._split(ctx, "val")
    chosen = [i for i in range(len(source)) if (source[i][1]["keypoints"][:, SHOULDERS, 2] > 0).all()][:2]
    prepare = transforms.evaluation(params.input_size)
    maps, truths = [], []
    for index in chosen:
        image, target = source[index]
        _, keypoints, ignore, _ = prepare(image, target)
        heatmaps, pafs, _ = make_targets(keypoints, ignore, params.input_size, params)
        maps.append((pafs, heatmaps))
        truths.append(target["keypoints"].numpy())
    model = Oracle([(torch.stack([p for p, _ in maps]), torch.stack([h for _, h in maps]))])
    raw = pd.DataFrame({"image": [source.image_path(i).read_bytes() for i in chosen]})
    answer = TASK.predict(model, ctx, raw)
    assert list(answer.columns) == ANSWER_COLUMNS and len(ANSWER_COLUMNS) == 2 + 3 * 17
    assert answer.dtypes.astype(str).to_dict() == ANSWER_TYPES
    assert answer["image"].value_counts().to_dict() == {p: len(t) for p, t in enumerate(truths)}
    for position, people in enumerate(truths):
        rows = answer[answer["image"] == position]
        for person in people:
            labelled = person[:, 2] > 0
            found = np.stack([rows[[f"{name}_x", f"{name}_y"]].to_numpy() for name in COCO_KEYPOINTS], axis=1)
            distance = np.abs(found[:, labelled] - person[labelled, :2]).max(axis=(1, 2))
            best = rows.iloc[int(np.argmin(distance))]
            assert distance.min() < 1.0
            for name, given in zip(COCO_KEYPOINTS, labelled):
                assert (best[f"{name}_score"] > 0) == given
                if not given:  # not found: (0, 0, 0) as in COCO's results, and no NaN to break JSON
                    assert best[f"{name}_x"] == best[f"{name}_y"] == 0.0
            assert 0 < best["score"] <= 1.1


def test_predict_with_nobody_found_is_an_empty_typed_frame_and_the_example_has_two_images(data_root):
    ctx = make_ctx(data_root, peak_threshold=5.0)  # no map of a fresh network reaches 5
    model = TASK.build_model(ctx)
    buffer = io.BytesIO()
    Image.new("RGB", (90, 70), (128, 128, 128)).save(buffer, format="PNG")
    answer = TASK.predict(model, ctx, [buffer.getvalue()])
    assert answer.empty and list(answer.columns) == ANSWER_COLUMNS
    assert answer.dtypes.astype(str).to_dict() == ANSWER_TYPES
    example = TASK.input_example(ctx)
    assert list(example.columns) == ["image"] and len(example) == 2
    assert all(isinstance(item, bytes) and len(item) > 100 for item in example["image"])
    # the example is what the served model is called with
    assert list(TASK.predict(model, ctx, example).columns) == ANSWER_COLUMNS
