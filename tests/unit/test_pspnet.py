"""Chapter 3's segmentation models: the book's PSPNet and the MobileNetV2 pyramid-pooling head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models import mobilenet, pspnet
from zooflow.models.pretrained import PretrainedWeightsMissing, imagenet_state_dict

# The book's PSPNet for VOC (21 classes) is "49.08 M" parameters; counted from this structure:
# backbone 23,631,808 + pyramid 4,198,400 + decoder 18,886,165 + aux 2,365,205.
BOOK_PSPNET_21_CLASSES = 49_081_578
BOOK_PSPNET_BACKBONE = 23_631_808
MOBILENET_PSP_21_CLASSES = 2_699_509
TINY = 1 / 8  # width of the shape and training tests: 8 to 256 channels


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


def assert_each_parameter_in_one_group(model: torch.nn.Module) -> None:
    groups = pspnet.param_groups(model)
    assert set(groups) == {"backbone", "head"}
    grouped = [id(p) for group in groups.values() for p in group]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())


# ---- the book's PSPNet -----------------------------------------------------------------------

def test_book_pspnet_has_the_books_parameter_count():
    model = pspnet.PSPNet(21)  # no forward pass: 49 M parameters at 475 px would be slow here
    assert count(model.parameters()) == BOOK_PSPNET_21_CLASSES == pspnet.BOOK_PSPNET_PARAMETERS
    groups = pspnet.param_groups(model)
    assert count(groups["backbone"]) == BOOK_PSPNET_BACKBONE
    assert count(groups["head"]) == BOOK_PSPNET_21_CLASSES - BOOK_PSPNET_BACKBONE
    assert_each_parameter_in_one_group(model)
    assert [len(getattr(model.backbone, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    # Only the two 1x1 classifiers have a bias; every other conv is followed by batch norm.
    biased = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    assert biased == ["decoder.4", "aux.4"]
    assert model.decoder[0].in_channels == 4096 and model.aux[0].in_channels == 1024


def test_pspnet_feature_map_is_at_stride_8():
    model = pspnet.PSPNet(21, width=TINY).eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 475, 475))
    assert features.shape == (1, 256, 60, 60)  # 2048 channels at width 1
    layer4 = model.backbone.layer4
    assert layer4[0].conv[0].dilation == (4, 4) and model.backbone.layer3[1].conv[0].dilation == (2, 2)


@pytest.mark.parametrize("size", [96, 120])
def test_pspnet_main_and_aux_have_the_input_size_in_train_and_eval(size):
    torch.manual_seed(0)
    model = pspnet.PSPNet(5, input_size=size, width=TINY)
    x = torch.randn(2, 3, size, size)
    main, aux = model(x)  # train mode
    assert main.shape == aux.shape == (2, 5, size, size)
    model.eval()
    with torch.no_grad():
        main, aux = model(x)
    assert main.shape == aux.shape == (2, 5, size, size)
    assert model.input_size == size


def test_pspnet_width_shrinks_every_channel():
    model = pspnet.PSPNet(3, width=TINY)
    assert model.backbone.stem[0][0].out_channels == 8 and model.backbone.stem[2][0].out_channels == 16
    assert model.backbone.layer4[0].expand[0].out_channels == 256
    assert model.pyramid.out_channels == 256 + 4 * 64 and model.decoder[0].out_channels == 64
    assert model.aux[0].in_channels == 128 and model.aux[0].out_channels == 32
    assert model.decoder[4].out_channels == model.aux[4].out_channels == 3  # classes do not shrink
    assert count(model.parameters()) < BOOK_PSPNET_21_CLASSES / 50


def test_inputs_smaller_than_the_minimum_are_refused():
    with pytest.raises(ValueError, match="at least 64"):
        pspnet.PSPNet(2, width=TINY)(torch.zeros(2, 3, 48, 64))
    with pytest.raises(ValueError, match="input_size"):
        pspnet.MobileNetV2PSP(2, input_size=32)


def test_a_tiny_pspnet_learns_one_image():
    torch.manual_seed(0)
    model = pspnet.PSPNet(2, input_size=64, width=TINY)
    image = torch.rand(1, 3, 64, 64) * 0.2
    image[:, 0, 16:48, 12:40] = 1.0
    mask = torch.zeros(1, 64, 64, dtype=torch.long)
    mask[:, 16:48, 12:40] = 1
    mask[:, :4], mask[:, -4:], mask[:, :, :4], mask[:, :, -4:] = 255, 255, 255, 255  # VOC-style "ignore"
    # A batch of two (the image and its mirror): the 1-cell pyramid branch's batch norm needs it.
    images, masks = torch.cat([image, image.flip(-1)]), torch.cat([mask, mask.flip(-1)])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        main, aux = model(images)
        loss = F.cross_entropy(main, masks, ignore_index=255)
        total = loss + 0.4 * F.cross_entropy(aux, masks, ignore_index=255)  # the book's aux weight
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[5], losses


# ---- MobileNetV2 with pyramid pooling ----------------------------------------------------------

def test_mobilenet_psp_loads_the_offline_imagenet_mobilenet_and_outputs_the_input_size():
    model = pspnet.build_mobilenet_psp(21, pretrained="imagenet", input_size=128)
    assert count(model.parameters()) == MOBILENET_PSP_21_CLASSES
    reference = mobilenet_v2(weights=None)
    reference.load_state_dict(imagenet_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, mobilenet.packaged_checkpoints()))
    expected = {k: v for k, v in reference.features.state_dict().items() if not k.startswith("18.")}
    loaded = model.backbone.state_dict()
    assert loaded.keys() == expected.keys()  # blocks 0-17: all but the 1x1 conv to 1280
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    assert_each_parameter_in_one_group(model)
    model.eval()
    with torch.no_grad():
        assert model.backbone(torch.zeros(1, 3, 128, 128)).shape == (1, 320, 8, 8)  # stride 16
        for size in [(128, 128), (96, 160)]:
            logits, aux = model(torch.zeros(1, 3, *size))
            assert logits.shape == (1, 21, *size) and aux is None


def test_mobilenet_psp_keeps_a_frozen_backbones_batchnorm_in_eval():
    model = pspnet.build_mobilenet_psp(2, pretrained="none", input_size=96)
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.train()
    assert all(m.training for m in norms)  # trainable backbone: ordinary train mode
    for parameter in pspnet.param_groups(model)["backbone"]:
        parameter.requires_grad_(False)
    model.train()
    assert not any(m.training for m in norms)
    assert all(m.training for part in model.head_modules() for m in part.modules())
    before = norms[0].running_mean.clone()
    model(torch.randn(2, 3, 96, 96))
    torch.testing.assert_close(norms[0].running_mean, before, rtol=0, atol=0)


# ---- pretrained weights ------------------------------------------------------------------------

def test_missing_weights_are_an_error_never_random(tmp_path, monkeypatch):
    absent = str(tmp_path / "absent.pth")
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        pspnet.build_pspnet(2, pretrained=absent, width=TINY)
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        pspnet.build_mobilenet_psp(2, pretrained=absent, input_size=96)
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        pspnet.build_pspnet(2, pretrained="imagenet", width=TINY)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ZOOFLOW_OFFLINE", "1")
    monkeypatch.setattr(mobilenet, "packaged_checkpoints", lambda: ())
    with pytest.raises(PretrainedWeightsMissing, match="mobilenet_v2"):
        pspnet.build_mobilenet_psp(2, pretrained="imagenet", input_size=96)


def test_a_saved_pspnet_loads_and_a_wrong_file_is_rejected(tmp_path):
    torch.manual_seed(0)
    source = pspnet.PSPNet(3, width=TINY).state_dict()
    torch.save(source, tmp_path / "pspnet.pth")
    model = pspnet.build_pspnet(3, pretrained=str(tmp_path / "pspnet.pth"), width=TINY)
    for key, value in source.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    torch.save({"backbone.stem.0.0.weight": source["backbone.stem.0.0.weight"], "fc.weight": torch.zeros(2)},
               tmp_path / "other.pth")
    with pytest.raises(InputRejected, match="other.pth") as error:
        pspnet.build_pspnet(3, pretrained=str(tmp_path / "other.pth"), width=TINY)
    assert "fc.weight" in str(error.value) and "backbone.stem.1.0.weight" in str(error.value)
    # Right keys, wrong shapes (another number of classes): still named, still rejected.
    with pytest.raises(InputRejected, match="pspnet.pth"):
        pspnet.build_pspnet(5, pretrained=str(tmp_path / "pspnet.pth"), width=TINY)
    torch.save({"features.0.0.weight": torch.zeros(1), "head.weight": torch.zeros(1)}, tmp_path / "notmobile.pth")
    with pytest.raises(InputRejected, match="notmobile.pth"):
        pspnet.build_mobilenet_psp(2, pretrained=str(tmp_path / "notmobile.pth"), input_size=96)
