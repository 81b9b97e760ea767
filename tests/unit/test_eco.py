"""Chapter 9's video models: the book's ECO-Lite and the paper's ECO-Full."""

from __future__ import annotations

import pytest
import torch

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models import eco
from zooflow.models.pretrained import PretrainedWeightsMissing

# The book's ECO-Lite (Kinetics, 400 classes) is "37.50 M" parameters; counted from this structure:
# 2D trunk 681,568 (stem 125,056 + 3a 219,552 + 3b 260,704 + part of 3c 76,256) + 3D tail
# 36,617,088 (res3 1,217,664 + res4 7,081,216 + res5 28,318,208) + fc 205,200.
BOOK_ECO_LITE = 37_503_856
TRUNK_2D = 681_568
TAIL_3D = 36_617_088
LITE_FC = 512 * 400 + 400
# ECO-Full (400 classes): the same trunk and tail, the 2D branch (rest of 3c, 4a-5b) and fc on 1536.
ECO_FULL = 47_502_128
BRANCH_2D = 9_588_672
FULL_FC = 1536 * 400 + 400
SMALL = 0.25  # width of every forward pass here: 24 channels into the 3D tail, 128 out of it
MODELS = (eco.EcoLite, eco.EcoFull)


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


def clip(batch: int, segments: int, height: int, width: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, segments, 3, height, width or height, generator=generator)


def assert_each_parameter_in_one_group(model: torch.nn.Module) -> dict:
    groups = eco.param_groups(model)
    assert set(groups) == {"backbone", "head"}
    grouped = [id(p) for group in groups.values() for p in group]
    assert len(grouped) == len(set(grouped))  # no parameter in two groups (or twice in one)
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    return groups


# ---- the architectures at the book's size ------------------------------------------------------

def test_eco_lite_has_the_books_parameter_count_and_layers():
    model = eco.EcoLite()  # no forward pass at width 1: 37.5 M parameters and 16 frames would be slow here
    assert count(model.parameters()) == BOOK_ECO_LITE == eco.BOOK_ECO_LITE_PARAMETERS
    assert count(model.trunk.parameters()) == TRUNK_2D
    assert count(model.tail.parameters()) == TAIL_3D
    assert count(model.fc.parameters()) == LITE_FC
    assert [count(getattr(model.tail, stage).parameters()) for stage in ("res3", "res4", "res5")] == [
        1_217_664, 7_081_216, 28_318_208]
    groups = assert_each_parameter_in_one_group(model)
    assert count(groups["backbone"]) == TRUNK_2D and count(groups["head"]) == TAIL_3D + LITE_FC
    conv1 = model.trunk.stem[0][0]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride) == (3, 64, (7, 7), (2, 2))
    assert model.trunk.inception_3a.out_channels == 256 and model.trunk.inception_3b_channels == 320
    assert model.trunk.out_channels == 96
    res3, res5 = model.tail.res3, model.tail.res5
    assert (res3.a2.in_channels, res3.a2.out_channels, res3.a2.stride) == (96, 128, (1, 1, 1))
    assert not hasattr(res3, "down")  # res3a_2's own output is res3b's shortcut
    assert (res5.down.in_channels, res5.down.out_channels, res5.down.kernel_size, res5.down.stride) == (
        256, 512, (3, 3, 3), (2, 2, 2))
    assert (model.fc.in_features, model.fc.out_features) == (512, 400)


def test_eco_full_parameter_count_and_its_2d_branch():
    model = eco.EcoFull()
    assert count(model.parameters()) == ECO_FULL == eco.ECO_FULL_PARAMETERS
    assert count(model.branch2d.parameters()) == BRANCH_2D
    assert count(model.fc.parameters()) == FULL_FC
    assert ECO_FULL == TRUNK_2D + TAIL_3D + BRANCH_2D + FULL_FC
    groups = assert_each_parameter_in_one_group(model)
    assert count(groups["backbone"]) == TRUNK_2D + BRANCH_2D  # all of BN-Inception's 2D layers
    assert count(groups["head"]) == TAIL_3D + FULL_FC
    channels = {name: block.out_channels for name, block in model.branch2d.blocks.named_children()}
    assert channels == {"inception_4a": 576, "inception_4b": 576, "inception_4c": 608, "inception_4d": 608,
                        "inception_4e": 1056, "inception_5a": 1024, "inception_5b": 1024}
    assert model.fc.in_features == 512 + 1024


def test_the_books_geometry_16_frames_of_224_pixels():
    torch.manual_seed(0)
    model = eco.EcoFull(width=SMALL).eval()
    shapes = {}
    model.tail.res5.register_forward_hook(lambda module, args, out: shapes.__setitem__("res5", out.shape))
    model.branch2d.blocks.register_forward_hook(lambda module, args, out: shapes.__setitem__("5b", out.shape))
    frames = clip(1, eco.BOOK_SEGMENTS, eco.BOOK_FRAME)
    with torch.no_grad():
        assert model.frame_features(frames).shape == (1, 16, 24, 28, 28)  # 96 channels at width 1
        assert model(frames).shape == (1, 400)
    assert shapes["res5"] == (1, 128, 4, 7, 7)  # the book's AvgPool3d((4, 7, 7)) covers all of it
    assert shapes["5b"] == (16, 256, 7, 7)       # BN-Inception's last 7x7 map, per frame


# ---- shapes, sizes and gradients at a small width ----------------------------------------------

@pytest.mark.parametrize("model_type", MODELS)
def test_logits_for_several_segment_counts_and_frame_sizes(model_type):
    torch.manual_seed(0)
    model = model_type(num_classes=5, width=SMALL)
    # (batch, segments, height, width): the smallest clip (2 frames of 64x64, one clip) in train
    # mode, where batch norm needs more than one value per channel; odd sides; more segments.
    for batch, segments, height, width in ((1, 2, 64, 64), (2, 4, 112, 112), (2, 3, 100, 76), (1, 7, 96, 96)):
        model.train()
        assert model(clip(batch, segments, height, width)).shape == (batch, 5)
        model.eval()
        with torch.no_grad():
            logits = model(clip(batch, segments, height, width))
        assert logits.shape == (batch, 5) and torch.isfinite(logits).all()


@pytest.mark.parametrize("model_type", MODELS)
def test_too_few_frames_too_small_frames_and_wrong_shapes_are_refused(model_type):
    model = model_type(num_classes=3, width=SMALL)
    with pytest.raises(ValueError, match=f"at least {eco.MIN_SEGMENTS} segments"):
        model(clip(2, 1, 64))
    with pytest.raises(ValueError, match=f"at least {eco.MIN_FRAME}x{eco.MIN_FRAME}"):
        model(clip(1, 4, 64, 63))
    with pytest.raises(ValueError, match=r"\[B, N, 3, H, W\]"):
        model(torch.zeros(4, 3, 64, 64))
    with pytest.raises(ValueError, match="dropout"):
        model_type(width=SMALL, dropout=1.0)


@pytest.mark.parametrize("model_type", MODELS)
def test_gradients_reach_every_layer_of_the_2d_trunk_and_the_3d_tail(model_type):
    torch.manual_seed(0)
    model = model_type(num_classes=4, width=SMALL)
    logits = model(clip(2, 4, 64))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not silent, silent
    assert model.trunk.stem[0][0].weight.grad.abs().sum() > 0 and model.tail.res3.a2.weight.grad.abs().sum() > 0


def test_width_scales_every_channel_but_the_classes():
    lite, full = eco.EcoLite(num_classes=9, width=SMALL), eco.EcoFull(num_classes=9, width=SMALL)
    assert lite.trunk.out_channels == 24 and lite.tail.out_channels == 128
    assert (lite.fc.in_features, lite.fc.out_features) == (128, 9)
    assert full.branch2d.out_channels == 256 and full.fc.in_features == 128 + 256
    assert count(lite.parameters()) < BOOK_ECO_LITE / 10
    assert_each_parameter_in_one_group(lite)
    assert_each_parameter_in_one_group(full)


# ---- what ECO is: per-frame 2D features, an order-sensitive 3D tail ----------------------------

@pytest.mark.parametrize("model_type", MODELS)
def test_the_trunk_sees_each_frame_alone_and_the_tail_sees_their_order(model_type):
    torch.manual_seed(0)
    model = model_type(num_classes=6, width=SMALL).eval()  # eval: train-mode BN pools stats over frames
    frames = clip(1, 4, 64)
    changed = frames.clone()
    changed[:, 2] = clip(1, 1, 64, seed=1)[:, 0]
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        features, features_changed = model.frame_features(frames), model.frame_features(changed)
        features_permuted = model.frame_features(frames[:, order])
        # The 3D tail reads the frames' maps stacked in time: [B, C, N, h, w].
        tail, tail_permuted = model.tail(features.transpose(1, 2)), model.tail(features_permuted.transpose(1, 2))
        logits, logits_permuted = model(frames), model(frames[:, order])
    # Frame k's 2D features depend on frame k only: the others' stay bit for bit, frame 2's move.
    kept = [0, 1, 3]
    torch.testing.assert_close(features_changed[:, kept], features[:, kept], rtol=0, atol=0)
    assert not torch.allclose(features_changed[:, 2], features[:, 2])
    torch.testing.assert_close(features_permuted, features[:, order], rtol=1e-5, atol=1e-6)
    # The same frames in another order: the 3D tail's features change (a frame-averaging 2D net's
    # would not), and with them the logits.
    assert (tail_permuted - tail).abs().max() > 0.05 * tail.abs().max()
    assert not torch.allclose(logits_permuted, logits, rtol=1e-4, atol=1e-4)


def test_eco_fulls_2d_branch_averages_over_frames_and_ignores_their_order():
    torch.manual_seed(0)
    model = eco.EcoFull(num_classes=6, width=SMALL).eval()
    frames, order = clip(1, 4, 64), torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        per_frame = model.branch2d(*model.trunk.features(frames.flatten(0, 1)))
        permuted = model.branch2d(*model.trunk.features(frames[:, order].flatten(0, 1)))
    assert per_frame.shape == (4, 256)  # one pooled vector a frame (1024 at width 1)
    assert not torch.allclose(per_frame[0], per_frame[1])
    torch.testing.assert_close(permuted.mean(0), per_frame.mean(0), rtol=1e-5, atol=1e-5)


def test_a_small_eco_lite_learns_two_clips_apart():
    torch.manual_seed(0)
    model = eco.EcoLite(num_classes=2, width=SMALL, dropout=0.0)
    clips, labels = clip(2, 2, 64), torch.tensor([0, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4, losses


# ---- pretrained weights ------------------------------------------------------------------------

@pytest.mark.parametrize(("model_type", "build"),
                         [(eco.EcoLite, eco.build_eco_lite), (eco.EcoFull, eco.build_eco_full)])
def test_a_saved_eco_loads_to_the_same_outputs(tmp_path, model_type, build):
    torch.manual_seed(0)
    source = model_type(num_classes=7, width=SMALL)
    source(clip(2, 3, 64))  # one train-mode pass so the running statistics are not the defaults
    source.eval()
    torch.save(source.state_dict(), tmp_path / "eco.pt")
    loaded = build(pretrained=str(tmp_path / "eco.pt"), num_classes=7, width=SMALL).eval()
    assert type(loaded) is model_type
    frames = clip(1, 4, 96, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), source(frames), rtol=0, atol=0)


def test_a_missing_or_wrong_weights_file_is_an_error_never_random(tmp_path):
    absent = tmp_path / "nowhere" / "eco_lite.pth"
    with pytest.raises(PretrainedWeightsMissing, match="no such file") as error:
        eco.build_eco_lite(pretrained=str(absent), num_classes=7, width=SMALL)
    assert isinstance(error.value, FileNotFoundError) and str(absent) in str(error.value)
    with pytest.raises(FileNotFoundError, match="eco_full.pth"):
        eco.build_eco_full(pretrained=str(tmp_path / "eco_full.pth"), num_classes=7, width=SMALL)

    state = eco.EcoLite(num_classes=7, width=SMALL).state_dict()
    state["tail.res5.b2.kernel"] = state.pop("tail.res5.b2.weight")  # one key renamed
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(InputRejected, match="renamed.pt") as error:
        eco.build_eco_lite(pretrained=str(tmp_path / "renamed.pt"), num_classes=7, width=SMALL)
    assert "tail.res5.b2.weight" in str(error.value) and "tail.res5.b2.kernel" in str(error.value)
    # ECO-Lite's weights are not ECO-Full's (its 2D branch is missing), nor another width's or
    # another number of classes' (shapes).
    torch.save(eco.EcoLite(num_classes=7, width=SMALL).state_dict(), tmp_path / "lite.pt")
    with pytest.raises(InputRejected, match="branch2d"):
        eco.build_eco_full(pretrained=str(tmp_path / "lite.pt"), num_classes=7, width=SMALL)
    with pytest.raises(InputRejected, match="lite.pt"):
        eco.build_eco_lite(pretrained=str(tmp_path / "lite.pt"), num_classes=8, width=SMALL)
    with pytest.raises(ConfigError, match="BN-Inception"):
        eco.build_eco_lite(pretrained="imagenet", num_classes=7, width=SMALL)
    assert isinstance(eco.build_eco_lite(pretrained="none", num_classes=7, width=SMALL), eco.EcoLite)


# ---- Caffe-era input ---------------------------------------------------------------------------

def test_to_caffe_input_scales_flips_to_bgr_and_subtracts_the_bgr_mean():
    # One frame of 1x2 pixels: red [0, 1], green [0.5, 0.2], blue [1, 0].
    frame = torch.tensor([[[0.0, 1.0]], [[0.5, 0.2]], [[1.0, 0.0]]])
    expected = torch.tensor([[[255 - 104.0, -104.0]],       # blue first
                             [[127.5 - 117.0, 51 - 117.0]],  # green
                             [[-128.0, 255 - 128.0]]])       # red last
    torch.testing.assert_close(eco.to_caffe_input(frame), expected)
    clips = frame.expand(2, 4, 3, 1, 2)  # a batch of clips [B, N, 3, H, W]: every frame alike
    torch.testing.assert_close(eco.to_caffe_input(clips), expected.expand(2, 4, 3, 1, 2))
    torch.testing.assert_close(eco.to_caffe_input(frame, bgr_mean=(0, 0, 0)), (frame * 255).flip(0))
    with pytest.raises(ValueError, match="RGB"):
        eco.to_caffe_input(torch.zeros(4, 8, 8))
