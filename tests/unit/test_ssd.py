"""Chapter 2's SSD: default boxes, matching, the MultiBox loss, decoding and the two detectors."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2, vgg16
from torchvision.ops import box_convert, box_iou

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models import mobilenet, ssd
from zooflow.models.pretrained import PretrainedWeightsMissing, imagenet_state_dict
from zooflow.tasks.detection.boxes import decode, encode, match, postprocess
from zooflow.tasks.detection.loss import MultiBoxLoss

BOOK_SSD300_20_CLASSES = 26_285_486  # the book's 26.29 M
SSD300_PRIORS = 8_732


def grid_priors(cells: int = 4, size: float = 0.25) -> torch.Tensor:
    """A small ``cells x cells`` grid of square priors (cx, cy, w, h) for matching and loss tests."""
    centres = (torch.arange(cells) + 0.5) / cells
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([cx.flatten(), cy.flatten(), torch.full_like(cx.flatten(), size),
                        torch.full_like(cx.flatten(), size)], dim=1)


# ---- default boxes and the models' shapes --------------------------------------------------

def test_book_ssd300_has_the_books_parameter_count_priors_and_outputs():
    model = ssd.SSD300(20)
    assert sum(p.numel() for p in model.parameters()) == BOOK_SSD300_20_CLASSES
    assert model.priors.shape == (SSD300_PRIORS, 4)
    assert "priors" not in model.state_dict()  # weights only
    groups = ssd.param_groups(model)
    assert sum(p.numel() for p in groups["backbone"]) == 14_714_688  # VGG-16's 13 convs
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    convs = [i for i, m in enumerate(model.base) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33]
    with torch.no_grad():
        loc, conf = model(torch.zeros(1, 3, 300, 300))
    assert loc.shape == (1, SSD300_PRIORS, 4) and conf.shape == (1, SSD300_PRIORS, 21)


def test_prior_boxes_follow_the_paper():
    priors = ssd.prior_boxes(ssd.SSD300_SPEC)
    assert priors.shape == (SSD300_PRIORS, 4)
    torch.testing.assert_close(priors[0], torch.tensor([4 / 300, 4 / 300, 30 / 300, 30 / 300]))
    torch.testing.assert_close(priors[1, 2:], torch.full((2,), math.sqrt(30 * 60) / 300))
    torch.testing.assert_close(priors[2, 2:], torch.tensor([30 * math.sqrt(2), 30 / math.sqrt(2)]) / 300)
    torch.testing.assert_close(priors[3, 2:], torch.tensor([30 / math.sqrt(2), 30 * math.sqrt(2)]) / 300)
    # Row-major cells: the first map's second cell is one step (8 px) to the right.
    torch.testing.assert_close(priors[4, :2], torch.tensor([12 / 300, 4 / 300]))
    torch.testing.assert_close(priors[4 * 38, :2], torch.tensor([4 / 300, 12 / 300]))
    # The last map: one cell in the middle of the image, its largest square clamped to 1.
    torch.testing.assert_close(priors[-4, :2], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(priors[-3, 2], torch.tensor(math.sqrt(264 * 315) / 300))
    assert priors[-2, 2] == 1.0 and priors[-1, 3] == 1.0  # 264 * sqrt(2) / 300 > 1: clamped
    assert priors.min() >= 0 and priors.max() <= 1


def test_ssd300_width_shrinks_every_channel():
    model = ssd.SSD300(3, width=1 / 16)
    assert model.base[0].out_channels == 4 and model.base[31].out_channels == 64
    assert model.l2norm.weight.shape == (32,) and model.extras[1].out_channels == 32



def test_ssd300_batch_norm_follows_every_conv_of_base_and_extras_and_nothing_else():
    book = ssd.SSD300(3, width=1 / 16)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in book.modules())
    model = ssd.SSD300(3, width=1 / 16, batch_norm=True)
    convs = [m for m in model.base if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.base if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 15
    assert all(isinstance(model.base[i + 1], torch.nn.BatchNorm2d) for i, m in enumerate(model.base)
               if isinstance(m, torch.nn.Conv2d))
    assert [n.num_features for n in model.extra_norms] == [c.out_channels for c in model.extras]
    # The first source is still conv4_3's ReLU (the 10th conv), and pool5 starts conv6/conv7.
    assert isinstance(model.base[model.conv4_3_relu], torch.nn.ReLU)
    assert model.base[model.conv4_3_relu - 2] is convs[9]
    assert isinstance(model.base[model.pool5], torch.nn.MaxPool2d) and model.base[model.pool5 + 1] is convs[13]
    groups = ssd.param_groups(model)
    grouped = [id(p) for group in groups.values() for p in group]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each parameter in one group
    model.eval()
    with torch.no_grad():
        loc, conf = model(torch.zeros(2, 3, 300, 300))
    assert loc.shape == (2, SSD300_PRIORS, 4) and conf.shape == (2, SSD300_PRIORS, 4)


def test_a_random_vgg_base_starts_with_he_init_so_the_signal_survives_its_depth():
    torch.manual_seed(0)
    model = ssd.SSD300(3, width=1 / 4)
    x = torch.randn(2, 3, 300, 300)
    with torch.no_grad():
        out = model.base(x)
    # Xavier would halve the variance at each of the 15 ReLU convs (~1e-4 of it left).
    assert out.pow(2).mean() > 0.05, out.pow(2).mean()


# ---- boxes: encode, decode, match, postprocess ---------------------------------------------

def test_encode_decode_round_trip():
    torch.manual_seed(0)
    priors = ssd.prior_boxes(ssd.SSD300_SPEC)[:500]
    corner = torch.rand(500, 2) * 0.6
    boxes = torch.cat([corner, corner + 0.05 + torch.rand(500, 2) * 0.3], dim=1)
    offsets = encode(boxes, priors)
    torch.testing.assert_close(decode(offsets, priors), boxes, atol=1e-5, rtol=0)
    batched = decode(torch.stack([offsets, torch.zeros_like(offsets)]), priors)
    assert batched.shape == (2, 500, 4)
    torch.testing.assert_close(batched[1], box_convert(priors, "cxcywh", "xyxy"))  # zero offsets: the prior


def test_match_gives_every_truth_a_prior_and_respects_the_threshold():
    priors = grid_priors()  # 4 x 4 adjacent squares of side 0.25; prior 5 is [0.25, 0.25, 0.5, 0.5]
    # A truth mostly on prior 5 (IoU 0.71) and a little on prior 6 (IoU 0.2), and a thin one
    # that no prior overlaps by even 0.2 (its best, prior 15: IoU 0.11).
    truths = torch.tensor([[0.25, 0.25, 0.6, 0.5], [0.76, 0.76, 0.79, 0.99]])
    labels = torch.tensor([3, 0])
    loc, classes = match(truths, labels, priors, threshold=0.5)
    iou = box_iou(truths, box_convert(priors, "cxcywh", "xyxy"))
    assert classes[5] == 4 and classes[6] == 0  # class 3 -> target 4 (0 is background); 0.2 < 0.5
    assert iou[1].max() < 0.2 and int(iou[1].argmax()) == 15
    assert classes[15] == 1  # forced onto its best prior anyway
    assert (classes > 0).sum() == 2
    torch.testing.assert_close(decode(loc[5], priors[5]), truths[0])
    loose = match(truths, labels, priors, threshold=0.15)[1]
    assert loose[6] == 4 and (loose > 0).sum() == 3  # a lower threshold adds the neighbour


def test_match_two_truths_sharing_a_best_prior_both_get_one():
    priors = grid_priors()
    # Both overlap prior 5 most (IoU 0.83 and 0.57); the second's next best, prior 6, is only
    # 0.22. Claiming best priors one truth after another would hand prior 5 to one of them and
    # leave the other without any prior; the greedy bipartite match gives it prior 6.
    truths = torch.tensor([[0.25, 0.25, 0.55, 0.5], [0.3, 0.25, 0.6, 0.5]])
    classes = match(truths, torch.tensor([0, 1]), priors)[1]
    assert classes[5] == 1 and classes[6] == 2 and (classes > 0).sum() == 2


def test_match_without_truths_is_all_background():
    loc, classes = match(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), grid_priors())
    assert loc.shape == (16, 4) and classes.shape == (16,) and not classes.any()


def test_postprocess_suppresses_within_a_class_only_and_drops_low_scores():
    priors = torch.tensor([[0.30, 0.30, 0.2, 0.2], [0.31, 0.30, 0.2, 0.2], [0.8, 0.8, 0.2, 0.2]])
    loc = torch.zeros(1, 3, 4)
    conf = torch.full((1, 3, 4), -10.0)  # background + 3 classes
    conf[0, 0, 1], conf[0, 1, 1] = 10.0, 9.0  # two overlapping boxes of class 0
    conf[0, 2, 0] = 10.0  # background: its object scores are ~1e-9
    same = postprocess(loc, conf, priors)[0]
    assert same["labels"].tolist() == [0] and same["boxes"].shape == (1, 4)
    torch.testing.assert_close(same["boxes"][0], torch.tensor([0.2, 0.2, 0.4, 0.4]))
    conf[0, 1, 1], conf[0, 1, 2] = -10.0, 9.0  # the second box is now class 1
    both = postprocess(loc, conf, priors)[0]
    assert sorted(both["labels"].tolist()) == [0, 1]
    assert both["scores"].min() > 0.5 and both["boxes"].dtype == torch.float32
    conf[0, 1] = torch.tensor([0.0, -10.0, -1.0, -10.0])  # class 1 now scores e^-1 / (1 + e^-1) = 0.27
    assert postprocess(loc, conf, priors, score_threshold=0.3)[0]["labels"].tolist() == [0]
    assert sorted(postprocess(loc, conf, priors, score_threshold=0.2)[0]["labels"].tolist()) == [0, 1]


def test_postprocess_keeps_top_k_and_clamps():
    torch.manual_seed(0)
    priors = ssd.prior_boxes(ssd.SSD300_SPEC)
    detections = postprocess(torch.randn(2, SSD300_PRIORS, 4) * 3, torch.randn(2, SSD300_PRIORS, 5), priors, top_k=50)
    assert len(detections) == 2
    for found in detections:
        assert len(found["scores"]) == 50 and found["labels"].max() < 4
        assert found["boxes"].min() >= 0 and found["boxes"].max() <= 1
        assert (found["scores"][:-1] >= found["scores"][1:]).all()


# ---- the loss ---------------------------------------------------------------------------------

def test_multibox_loss_is_lower_for_the_right_answer_and_mines_hard_negatives():
    torch.manual_seed(0)
    priors = ssd.prior_boxes(ssd.SSD300_SPEC)
    targets = [(torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.5, 0.5, 0.9, 0.8]]), torch.tensor([2, 0])),
               (torch.tensor([[0.2, 0.3, 0.7, 0.9]]), torch.tensor([1]))]
    criterion = MultiBoxLoss()
    loc_targets, classes = criterion.targets(priors, targets)
    perfect = criterion(loc_targets.clone(), torch.nn.functional.one_hot(classes, 4).float() * 20, priors, targets)
    random = criterion(torch.randn(2, SSD300_PRIORS, 4), torch.randn(2, SSD300_PRIORS, 4), priors, targets)
    assert perfect["loss"] < 1e-3 < random["loss"]
    assert perfect["positives"] == random["positives"] == int((classes > 0).sum()) > 3
    assert random["negatives"] == 3 * random["positives"]
    torch.testing.assert_close(random["loss"], random["loc"] + random["conf"])


def test_hard_negatives_are_at_most_all_negatives_and_the_hardest():
    priors = grid_priors()
    # One truth covering most of the image: many positives, so 3 x positives > negatives.
    targets = [(torch.tensor([[0.0, 0.0, 0.9, 0.9]]), torch.tensor([0]))]
    criterion = MultiBoxLoss(threshold=0.05)
    classes = criterion.targets(priors, targets)[1]
    positives = int((classes > 0).sum())
    assert 3 * positives > 16 - positives
    out = criterion(torch.zeros(1, 16, 4), torch.zeros(1, 16, 2), priors, targets)
    assert out["negatives"] == min(3 * positives, 16 - positives)
    # With one positive, the three negatives of highest background loss are the kept ones.
    cross_entropy = torch.arange(16.0).unsqueeze(0)
    positive = torch.zeros(1, 16, dtype=torch.bool)
    positive[0, 15] = True
    kept = criterion.hard_negatives(cross_entropy, positive)
    assert kept.nonzero()[:, 1].tolist() == [12, 13, 14]


def test_a_tiny_ssd300_learns_one_image():
    torch.manual_seed(0)
    model = ssd.SSD300(3, width=1 / 16)
    image = torch.rand(1, 3, 300, 300) * 0.2
    image[:, 0, 60:210, 30:150] = 1.0
    image[:, 1, 90:240, 165:270] = 1.0
    targets = [(torch.tensor([[0.1, 0.2, 0.5, 0.7], [0.55, 0.3, 0.9, 0.8]]), torch.tensor([0, 2]))]
    criterion = MultiBoxLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = criterion(*model(image), model.priors, targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Measured from step 5, after the first steps have brought the random init's outsized
    # logits down (which alone takes the loss from ~30 to ~8).
    assert losses[-1] < 0.5 * losses[5], losses


# ---- pretrained weights ------------------------------------------------------------------------

def test_ssdlite_loads_the_offline_imagenet_mobilenet():
    model = ssd.build_ssdlite_mobilenet_v2(20, pretrained="imagenet", input_size=192)
    reference = mobilenet_v2(weights=None)
    reference.load_state_dict(imagenet_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, mobilenet.packaged_checkpoints()))
    for key, value in reference.features.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value, rtol=0, atol=0)
    assert model.priors.shape == (1166, 4)
    model.eval()
    with torch.no_grad():
        loc, conf = model(torch.zeros(1, 3, 192, 192))
    assert loc.shape == (1, 1166, 4) and conf.shape == (1, 1166, 21)


def test_ssdlite_keeps_a_frozen_backbones_batchnorm_in_eval():
    model = ssd.build_ssdlite_mobilenet_v2(2, pretrained="none", input_size=128)
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.train()
    assert all(m.training for m in norms)  # trainable backbone: ordinary train mode
    for parameter in ssd.param_groups(model)["backbone"]:
        parameter.requires_grad_(False)
    model.train()
    assert not any(m.training for m in norms)
    assert all(m.training for m in model.extras.modules())


def test_missing_weights_are_an_error_never_random(tmp_path, monkeypatch):
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        ssd.build_ssdlite_mobilenet_v2(2, pretrained=str(tmp_path / "absent.pth"), input_size=128)
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        ssd.build_ssd300(2, pretrained=str(tmp_path / "absent.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ZOOFLOW_OFFLINE", "1")
    monkeypatch.setattr(mobilenet, "packaged_checkpoints", lambda: ())
    with pytest.raises(PretrainedWeightsMissing, match="mobilenet_v2"):
        ssd.build_ssdlite_mobilenet_v2(2, pretrained="imagenet", input_size=128)
    with pytest.raises(PretrainedWeightsMissing, match="vgg16"):
        ssd.build_ssd300(2, pretrained="imagenet")


def test_torchvision_vgg16_becomes_the_ssd_base(monkeypatch):
    torch.manual_seed(0)
    state = vgg16(weights=None).state_dict()
    base = ssd.vgg16_to_ssd_base(state)
    assert base["31.weight"].shape == (1024, 512, 3, 3) and base["33.weight"].shape == (1024, 1024, 1, 1)
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
    taps = torch.tensor([0, 3, 6])
    expected6 = fc6.index_select(0, torch.arange(0, 4096, 4)).index_select(2, taps).index_select(3, taps)
    torch.testing.assert_close(base["31.weight"], expected6, rtol=0, atol=0)
    assert base["31.weight"][5, 7, 2, 1] == state["classifier.0.weight"][20, 7 * 49 + 6 * 7 + 3]
    assert base["33.weight"][3, 10, 0, 0] == state["classifier.3.weight"][12, 40]
    torch.testing.assert_close(base["31.bias"], state["classifier.0.bias"][::4], rtol=0, atol=0)
    torch.testing.assert_close(base["33.bias"], state["classifier.3.bias"][::4], rtol=0, atol=0)
    # The whole path: "imagenet" is detected as torchvision's layout and loads into SSD300.
    monkeypatch.setattr(ssd, "imagenet_state_dict", lambda weights: state)
    model = ssd.build_ssd300(20, pretrained="imagenet")
    torch.testing.assert_close(model.base[28].weight, state["features.28.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.base[31].weight, expected6, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="width"):
        ssd.build_ssd300(20, pretrained="imagenet", width=0.5)
    with pytest.raises(ConfigError, match="batch_norm"):
        ssd.build_ssd300(20, pretrained="imagenet", batch_norm=True)


def test_a_reducedfc_file_loads_and_a_wrong_file_is_rejected(tmp_path):
    torch.manual_seed(0)
    source = ssd.SSD300(20).base.state_dict()  # the book's vgg16_reducedfc keys: "0.weight" ... "33.bias"
    torch.save(source, tmp_path / "vgg16_reducedfc.pth")
    model = ssd.build_ssd300(20, pretrained=str(tmp_path / "vgg16_reducedfc.pth"))
    torch.testing.assert_close(model.base[33].weight, source["33.weight"], rtol=0, atol=0)
    torch.save({"0.weight": source["0.weight"], "fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(InputRejected, match="other.pth") as error:
        ssd.build_ssd300(20, pretrained=str(tmp_path / "other.pth"))
    assert "fc.weight" in str(error.value) and "31.weight" in str(error.value)
