"""Chapter 4's pose models: the book's OpenPose and the light OpenPose on MobileNetV2."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models import mobilenet, openpose
from zooflow.models.pretrained import PretrainedWeightsMissing, imagenet_state_dict

# The book's OpenPose (COCO: 18 parts, 19 limbs) is "52.31 M" parameters; counted from this
# structure: VGG-19 conv1_1-conv4_2 5,865,536 + CPM reduction 1,474,944 + stage 1 1,046,841
# + 5 x 8,784,825 for stages 2-6.
BOOK_OPENPOSE = 52_311_446
BOOK_VGG19_BODY = 5_865_536
MOBILENET_OPENPOSE = 790_450  # defaults: 64 channels, 2 stages
MOBILENET_BODY = 55_488       # MobileNetV2 blocks 0-6
TINY = 1 / 16  # width of the shape and training tests: 4 to 32 channels
VGG19_FILE = "vgg19-dcbb9e9d.pth"


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


def assert_each_parameter_in_one_group(model: torch.nn.Module) -> None:
    groups = openpose.param_groups(model)
    assert set(groups) == {"backbone", "head"}
    grouped = [id(p) for group in groups.values() for p in group]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())


def assert_pose_outputs(outputs, batch: int, cells: tuple[int, int], stages: int, pafs: int = 38,
                        heatmaps: int = 19) -> None:
    final_pafs, final_heatmaps, per_stage = outputs
    assert final_pafs.shape == (batch, pafs, *cells) and final_heatmaps.shape == (batch, heatmaps, *cells)
    assert len(per_stage) == stages
    for stage_pafs, stage_heatmaps in per_stage:
        assert stage_pafs.shape == final_pafs.shape and stage_heatmaps.shape == final_heatmaps.shape
    assert per_stage[-1][0] is final_pafs and per_stage[-1][1] is final_heatmaps


def masked_mse(per_stage, pafs: torch.Tensor, heatmaps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The book's loss: masked MSE of every stage's PAFs and heatmaps, summed over stages (the mask
    blanks regions of people without annotations)."""
    return sum(F.mse_loss(p * mask, pafs * mask) + F.mse_loss(h * mask, heatmaps * mask) for p, h in per_stage)


# ---- the book's OpenPose ---------------------------------------------------------------------

def test_book_openpose_has_the_books_parameter_count_and_layers():
    model = openpose.OpenPose()  # no forward pass: 52 M parameters at 368 px would be slow here
    assert count(model.parameters()) == BOOK_OPENPOSE == openpose.BOOK_OPENPOSE_PARAMETERS
    groups = openpose.param_groups(model)
    assert count(groups["backbone"]) == BOOK_VGG19_BODY
    assert count(groups["head"]) == BOOK_OPENPOSE - BOOK_VGG19_BODY
    assert_each_parameter_in_one_group(model)
    # VGG-19's first ten convs at torchvision's indices (pools at 4, 9 and 18), then the CPM pair.
    convs = [index for index, layer in enumerate(model.backbone) if isinstance(layer, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21]
    pools = [index for index, layer in enumerate(model.backbone) if isinstance(layer, torch.nn.MaxPool2d)]
    assert pools == [4, 9, 18]
    assert [(c.in_channels, c.out_channels) for c in model.reduce if isinstance(c, torch.nn.Conv2d)] == [
        (512, 256), (256, 128)]
    assert len(model.stages) == 6
    first, second = model.stages[0].paf, model.stages[1].heatmap
    first_convs = [m for m in first if isinstance(m, torch.nn.Conv2d)]
    second_convs = [m for m in second if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in first_convs] == [
        (128, 128, 3)] * 3 + [(128, 512, 1), (512, 38, 1)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in second_convs] == [
        (185, 128, 7)] + [(128, 128, 7)] * 4 + [(128, 128, 1), (128, 19, 1)]
    assert not isinstance(first[-1], torch.nn.ReLU) and isinstance(first[-2], torch.nn.ReLU)


def test_openpose_maps_at_the_books_368_crop_in_train_and_eval():
    torch.manual_seed(0)
    model = openpose.OpenPose(width=TINY)
    x = torch.randn(1, 3, 368, 368)
    assert_pose_outputs(model(x), 1, (46, 46), stages=6)
    model.eval()
    with torch.no_grad():
        assert_pose_outputs(model(x), 1, (46, 46), stages=6)
        assert model.features(x).shape == (1, 8, 46, 46)  # 128 channels at width 1


def test_openpose_takes_odd_sizes_and_refuses_tiny_ones():
    model = openpose.OpenPose(stages=2, width=TINY).eval()
    with torch.no_grad():
        assert_pose_outputs(model(torch.randn(2, 3, 101, 75)), 2, (12, 9), stages=2)  # floor(H / 8)
    with pytest.raises(ValueError, match="at least 8"):
        model(torch.zeros(1, 3, 7, 64))


def test_openpose_width_shrinks_every_channel_but_the_maps():
    model = openpose.OpenPose(width=TINY)
    assert model.backbone[0].out_channels == 4 and model.backbone[21].out_channels == 32
    assert model.reduce[2].out_channels == 8
    assert model.stages[0].paf[6].out_channels == 32  # the 1x1 to 512 at width 1
    assert model.stages[1].paf[0].in_channels == 8 + 38 + 19
    assert model.stages[-1].paf[-1].out_channels == 38 and model.stages[-1].heatmap[-1].out_channels == 19
    assert count(model.parameters()) < BOOK_OPENPOSE / 100


def test_one_stage_and_other_skeletons():
    model = openpose.OpenPose(stages=1, width=TINY, num_parts=14, num_limbs=13).eval()
    with torch.no_grad():
        assert_pose_outputs(model(torch.randn(1, 3, 64, 48)), 1, (8, 6), stages=1, pafs=26, heatmaps=15)
    with pytest.raises(ValueError, match="stages"):
        openpose.OpenPose(stages=0, width=TINY)


def test_every_stage_trains_every_layer():
    torch.manual_seed(0)
    for model in (openpose.OpenPose(stages=3, width=TINY), openpose.MobileNetOpenPose(stages=3, channels=8)):
        _, _, per_stage = model(torch.randn(2, 3, 64, 64))
        masked_mse(per_stage, torch.zeros_like(per_stage[0][0]), torch.ones_like(per_stage[0][1]),
                   torch.ones(2, 1, 8, 8)).backward()
        silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
        assert not silent, silent


def test_a_tiny_openpose_overfits_one_random_target():
    torch.manual_seed(0)
    model = openpose.OpenPose(stages=2, width=TINY)
    image = torch.randn(1, 3, 64, 64)
    # A smooth random target (random values on a 2x2 grid, bilinearly upsampled to the 8x8 maps):
    # i.i.d. noise in each of the 57 maps is beyond a width-1/16 net's 8-channel stage 2 to fit.
    smooth = lambda coarse: F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=True)  # noqa: E731
    pafs, heatmaps = smooth(torch.rand(1, 38, 2, 2) * 2 - 1), smooth(torch.rand(1, 19, 2, 2))
    mask = (torch.rand(1, 1, 8, 8) > 0.25).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        _, _, per_stage = model(image)
        loss = masked_mse(per_stage, pafs, heatmaps, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, losses


# ---- OpenPose on MobileNetV2 -------------------------------------------------------------------

def test_mobilenet_openpose_loads_the_offline_imagenet_mobilenet_and_outputs_stride_8_maps():
    model = openpose.build_mobilenet_openpose(pretrained="imagenet")
    assert count(model.parameters()) == MOBILENET_OPENPOSE
    assert count(openpose.param_groups(model)["backbone"]) == MOBILENET_BODY
    assert_each_parameter_in_one_group(model)
    reference = mobilenet_v2(weights=None)
    reference.load_state_dict(imagenet_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, mobilenet.packaged_checkpoints()))
    expected = {k: v for k, v in reference.features.state_dict().items() if int(k.split(".")[0]) < 7}
    loaded = model.backbone.state_dict()
    assert loaded.keys() == expected.keys()  # blocks 0-6, ImageNet's running statistics included
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    model.eval()
    with torch.no_grad():
        assert model.backbone(torch.zeros(1, 3, 64, 64)).shape == (1, 32, 8, 8)
        assert_pose_outputs(model(torch.randn(1, 3, 368, 368)), 1, (46, 46), stages=2)
        assert_pose_outputs(model(torch.randn(1, 3, 101, 75)), 1, (13, 10), stages=2)  # ceil(H / 8)


def test_mobilenet_openpose_keeps_a_frozen_backbones_batchnorm_in_eval():
    model = openpose.build_mobilenet_openpose(pretrained="none", stages=1, channels=8)
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.train()
    assert all(m.training for m in norms)
    for parameter in openpose.param_groups(model)["backbone"]:
        parameter.requires_grad_(False)
    model.train()
    assert not any(m.training for m in norms) and model.stages.training
    before = norms[0].running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(norms[0].running_mean, before, rtol=0, atol=0)


# ---- pretrained weights ------------------------------------------------------------------------

def test_imagenet_openpose_without_vgg19_on_disk_is_an_error_never_random(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ZOOFLOW_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsMissing, match=VGG19_FILE) as error:
        openpose.build_openpose(pretrained="imagenet")
    assert str(tmp_path / "hub" / "checkpoints" / VGG19_FILE) in str(error.value)  # where to put it
    with pytest.raises(ConfigError, match="width"):
        openpose.build_openpose(pretrained="imagenet", width=TINY)
    monkeypatch.setattr(mobilenet, "packaged_checkpoints", lambda: ())
    with pytest.raises(PretrainedWeightsMissing, match="mobilenet_v2"):
        openpose.build_mobilenet_openpose(pretrained="imagenet")
    absent = str(tmp_path / "absent.pth")
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        openpose.build_openpose(pretrained=absent, width=TINY)
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        openpose.build_mobilenet_openpose(pretrained=absent)


def test_imagenet_openpose_takes_vgg19s_first_ten_convs(tmp_path, monkeypatch):
    # A stand-in for torchvision's file: random conv1_1-conv4_2 at VGG-19's indices and shapes,
    # plus a later conv and a classifier layer, which OpenPose leaves out.
    shapes = dict(zip((0, 2, 5, 7, 10, 12, 14, 16, 19, 21),
                      ((64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (256, 256),
                       (512, 256), (512, 512))))
    torch.manual_seed(0)
    state = {}
    for index, (out, inp) in shapes.items():
        state[f"features.{index}.weight"] = torch.randn(out, inp, 3, 3)
        state[f"features.{index}.bias"] = torch.randn(out)
    state["features.23.weight"], state["features.23.bias"] = torch.zeros(512, 512, 3, 3), torch.zeros(512)
    state["classifier.6.weight"], state["classifier.6.bias"] = torch.zeros(1000, 8), torch.zeros(1000)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / VGG19_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ZOOFLOW_OFFLINE", "1")
    model = openpose.build_openpose(pretrained="imagenet", stages=1)
    loaded = model.backbone.state_dict()
    assert len(loaded) == 20
    for index in shapes:
        torch.testing.assert_close(loaded[f"{index}.weight"], state[f"features.{index}.weight"], rtol=0, atol=0)
        torch.testing.assert_close(loaded[f"{index}.bias"], state[f"features.{index}.bias"], rtol=0, atol=0)
    with pytest.raises(InputRejected, match="VGG-19"):
        openpose.vgg19_to_openpose_backbone({"backbone.0.weight": torch.zeros(1)}, "other.pth")


def test_a_saved_openpose_loads_and_a_wrong_file_is_rejected(tmp_path):
    torch.manual_seed(0)
    source = openpose.OpenPose(stages=2, width=TINY).state_dict()
    torch.save(source, tmp_path / "openpose.pth")
    model = openpose.build_openpose(pretrained=str(tmp_path / "openpose.pth"), stages=2, width=TINY)
    assert model.state_dict().keys() == source.keys()
    for key, value in source.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    torch.save({"backbone.0.weight": source["backbone.0.weight"], "fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(InputRejected, match="other.pth") as error:
        openpose.build_openpose(pretrained=str(tmp_path / "other.pth"), stages=2, width=TINY)
    assert "fc.weight" in str(error.value) and "backbone.0.bias" in str(error.value)
    # Another number of stages (missing keys) or parts (wrong shapes): still named, still rejected.
    with pytest.raises(InputRejected, match="openpose.pth"):
        openpose.build_openpose(pretrained=str(tmp_path / "openpose.pth"), stages=3, width=TINY)
    with pytest.raises(InputRejected, match="openpose.pth"):
        openpose.build_openpose(pretrained=str(tmp_path / "openpose.pth"), stages=2, width=TINY, num_parts=14)
    torch.save({"features.0.0.weight": torch.zeros(1), "head.weight": torch.zeros(1)}, tmp_path / "notmobile.pth")
    with pytest.raises(InputRejected, match="notmobile.pth"):
        openpose.build_mobilenet_openpose(pretrained=str(tmp_path / "notmobile.pth"))
