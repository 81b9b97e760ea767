"""The pose pipeline moves keypoints exactly with the image content, swaps left and right on a
mirror, unlabels what leaves the square, marks padding ignored, and evaluation maps back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from zooflow.tasks.pose import transforms
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS
from zooflow.tasks.pose.transforms import IMAGENET_MEAN, IMAGENET_STD, Placement, evaluation, to_input, to_original, \
    training

K = COCO_KEYPOINTS.index
SIGMA = 2.5  # blob radius in source pixels: still over one pixel at the smallest scale


def _dotted(height: int, width: int, people: torch.Tensor, seed: int = 0) -> tv_tensors.Image:
    """A dark noisy image with a bright Gaussian blob centred on each labelled keypoint (pixel ``j``'s
    centre at ``x = j``)."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    light = torch.zeros(height, width)
    for x, y, v in people.reshape(-1, 3).tolist():
        if v >= 1:
            light = torch.maximum(light, torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * SIGMA ** 2)))
    noise = torch.rand(3, height, width, generator=generator) * 30
    return tv_tensors.Image((noise + 225 * light).round().clamp(0, 255).to(torch.uint8))


def _grid_people(height: int, width: int, count: int, spacing: int, seed: int = 0) -> torch.Tensor:
    """``count`` people whose keypoints sit on a grid ``spacing`` pixels apart, with sub-pixel jitter."""
    generator = torch.Generator().manual_seed(seed)
    points = [(x, y) for y in range(spacing // 2, height - spacing // 2, spacing)
              for x in range(spacing // 2, width - spacing // 2, spacing)]
    assert len(points) >= 17 * count
    xy = torch.tensor(points[:17 * count], dtype=torch.float32) + torch.rand(17 * count, 2, generator=generator) - 0.5
    people = torch.cat([xy, torch.full((17 * count, 1), 2.0)], dim=1).reshape(count, 17, 3)
    people[0, 3, 2] = 1  # a hidden one keeps its v
    return people


def _brightness(image: torch.Tensor) -> torch.Tensor:
    """The normalised image back in [0, 1], averaged over the channels."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (image * std + mean).mean(dim=0)


def _check_dots(image, keypoints, ignore, radius: int = 4) -> int:
    """Each labelled keypoint whose neighbourhood is all image: the brightest pixel within 1 px of
    it, the blob's centroid within 0.3 px. Returns how many were checked."""
    light = _brightness(image)
    size_y, size_x = light.shape
    checked = 0
    for x, y, v in keypoints.reshape(-1, 3).tolist():
        if v < 1:
            continue
        cx, cy = round(x), round(y)
        if not (radius <= cx < size_x - radius and radius <= cy < size_y - radius):
            continue
        window = (slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
        if ignore[window].any():
            continue
        patch = light[window]
        peak = int(patch.argmax())
        py, px = divmod(peak, patch.shape[1])
        assert abs(px - radius + cx - x) <= 1 and abs(py - radius + cy - y) <= 1, (x, y, px, py)
        weight = (patch - 0.55).clamp(min=0)
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        centroid_x = cx + (weight.sum(0) * offsets).sum() / weight.sum()
        centroid_y = cy + (weight.sum(1) * offsets).sum() / weight.sum()
        assert abs(centroid_x - x) < 0.3 and abs(centroid_y - y) < 0.3, (x, y, float(centroid_x), float(centroid_y))
        checked += 1
    return checked


@pytest.mark.parametrize("seed", range(6))
def test_keypoints_land_on_their_content_after_scale_rotate_crop_flip(seed):
    people = _grid_people(240, 320, 2, spacing=32, seed=seed)
    image = _dotted(240, 320, people, seed)
    torch.manual_seed(seed)
    out_image, keypoints, ignore = training(input_size=160, scale_min=0.7, scale_max=1.6, rotation=40)(
        image, {"keypoints": people, "ignore": tv_tensors.Mask(torch.zeros(240, 320, dtype=torch.bool))})
    assert _check_dots(out_image, keypoints, ignore) >= 5


def test_the_dot_test_sees_a_half_pixel_error():
    people = _grid_people(240, 320, 1, spacing=32)
    image = _dotted(240, 320, people)
    torch.manual_seed(0)
    out_image, keypoints, ignore = training(160, 1.0, 1.0, rotation=40)(image, {"keypoints": people})
    shifted = keypoints.clone()
    shifted[..., :2] += 0.5
    with pytest.raises(AssertionError):
        _check_dots(out_image, shifted, ignore)


def _flipped_seed(transform, image, target) -> tuple[int, tuple]:
    """A seed under which ``transform`` mirrors ``image`` (scale 1, no rotation, the window the
    whole image: the output is the image or its mirror)."""
    plain = transforms._normalise(image)
    for seed in range(20):
        torch.manual_seed(seed)
        out = transform(image, target)
        if torch.allclose(out[0], plain.flip(-1)):
            return seed, out
        assert torch.allclose(out[0], plain)
    raise AssertionError("no flip in 20 seeds")


def test_a_flip_mirrors_x_and_swaps_left_and_right():
    size = 64
    people = torch.zeros(1, 17, 3)
    people[0, K("left_wrist")] = torch.tensor([10.0, 30.0, 2])   # on the image's left
    people[0, K("right_wrist")] = torch.tensor([20.25, 31.0, 1])
    people[0, K("nose")] = torch.tensor([15.5, 5.0, 2])
    ignore = torch.zeros(size, size, dtype=torch.bool)
    ignore[:, :8] = True
    image = tv_tensors.Image(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
    transform = training(size, 1.0, 1.0, rotation=0, flip=True)
    _, (_, keypoints, out_ignore) = _flipped_seed(transform, image, {"keypoints": people, "ignore": ignore})
    # The person's left wrist, mirrored, is now their right wrist, on the image's right.
    assert keypoints[0, K("right_wrist")].tolist() == [size - 1 - 10.0, 30.0, 2]
    assert keypoints[0, K("left_wrist")].tolist() == [size - 1 - 20.25, 31.0, 1]
    assert keypoints[0, K("nose")].tolist() == [size - 1 - 15.5, 5.0, 2]
    assert (keypoints[0, :, 2] > 0).sum() == 3
    assert torch.equal(out_ignore, ignore.flip(-1))


def test_without_flip_nothing_moves():
    size = 48
    people = torch.zeros(1, 17, 3)
    people[0, K("left_wrist")] = torch.tensor([10.0, 30.0, 2])
    image = tv_tensors.Image(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
    for seed in range(4):
        torch.manual_seed(seed)
        out_image, keypoints, _ = training(size, 1.0, 1.0, rotation=0, flip=False)(image, {"keypoints": people})
        assert torch.allclose(out_image, transforms._normalise(image))
        assert torch.equal(keypoints, people)


def test_flip_table_is_coco_left_right():
    for index, name in enumerate(COCO_KEYPOINTS):
        other = COCO_KEYPOINTS[transforms.COCO_FLIP[index]]
        assert other == name.replace("left", "@").replace("right", "left").replace("@", "right")


@pytest.mark.parametrize("seed", range(4))
def test_keypoints_cropped_away_become_unlabelled(seed):
    # 100 x 200 image, scale 1, a 100 square: the window starts at a random x in [0, 100].
    people = torch.zeros(1, 17, 3)
    xs = [5.0, 30.0, 60.0, 99.0, 100.0, 140.0, 170.0, 195.0]
    for k, x in enumerate(xs):
        people[0, k] = torch.tensor([x, 50.0, 1 + k % 2])
    image = tv_tensors.Image(torch.zeros(3, 100, 200, dtype=torch.uint8))
    torch.manual_seed(seed)
    _, keypoints, ignore = training(100, 1.0, 1.0, rotation=0, flip=False)(image, {"keypoints": people})
    kept = keypoints[0, :, 2] > 0
    assert 0 < kept.sum() < len(xs)
    left = float(people[0, kept.nonzero()[0, 0], 0] - keypoints[0, kept.nonzero()[0, 0], 0])
    for k, x in enumerate(xs):
        if -0.5 <= x - left < 99.5:
            assert keypoints[0, k].tolist() == [x - left, 50.0, 1 + k % 2]
        else:
            assert keypoints[0, k].tolist() == [0.0, 0.0, 0.0]
    assert not keypoints[0, len(xs):].any()
    assert not ignore.any()


def test_keypoints_rotated_out_become_unlabelled_and_corners_are_ignored():
    people = torch.zeros(1, 17, 3)
    people[0, 0] = torch.tensor([1.0, 1.0, 2])     # a corner: any real rotation takes it out
    people[0, 1] = torch.tensor([49.5, 49.5, 2])   # the centre stays
    image = tv_tensors.Image(torch.zeros(3, 100, 100, dtype=torch.uint8))
    torch.manual_seed(0)
    _, keypoints, ignore = training(100, 1.0, 1.0, rotation=40, flip=False)(image, {"keypoints": people})
    assert keypoints[0, 0].tolist() == [0.0, 0.0, 0.0]
    assert keypoints[0, 1, 2] == 2 and torch.allclose(keypoints[0, 1, :2], torch.tensor([49.5, 49.5]), atol=1e-4)
    assert ignore[0, 0] and ignore[-1, -1] and not ignore[50, 50]


def test_padding_is_mean_colour_and_ignored():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 50, 80), dtype=torch.uint8))
    people = torch.zeros(1, 17, 3)
    people[0, 0] = torch.tensor([3.0, 4.0, 2])
    torch.manual_seed(0)
    out_image, keypoints, ignore = training(100, 0.5, 0.5, rotation=0, flip=False)(image, {"keypoints": people})
    assert ignore.sum() == 100 * 100 - 50 * 80
    assert out_image[:, ignore].abs().max() < 0.02  # the mean colour is ~0 after normalising
    rows, cols = (~ignore).nonzero(as_tuple=True)
    top, left = int(rows.min()), int(cols.min())
    assert torch.allclose(out_image[:, top:top + 50, left:left + 80], transforms._normalise(image))
    assert keypoints[0, 0].tolist() == [3.0 + left, 4.0 + top, 2]


def test_shapes_and_dtypes():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 120, 90), dtype=torch.uint8))
    for people in (torch.zeros(0, 17, 3), _grid_people(120, 90, 1, spacing=16)):
        torch.manual_seed(1)
        out_image, keypoints, ignore = training(64)(image, {"keypoints": people})
        assert out_image.shape == (3, 64, 64) and out_image.dtype == torch.float32
        assert keypoints.shape == people.shape and keypoints.dtype == torch.float32
        assert ignore.shape == (64, 64) and ignore.dtype == torch.bool
        assert type(out_image) is torch.Tensor and type(ignore) is torch.Tensor
        out_image, keypoints, ignore, placement = evaluation(64)(image, {"keypoints": people})
        assert out_image.shape == (3, 64, 64) and keypoints.shape == people.shape and ignore.shape == (64, 64)
        assert placement == Placement(120, 90, 64, 48)


def test_evaluation_keeps_aspect_pads_bottom_right_and_moves_keypoints_with_content():
    people = _grid_people(100, 200, 1, spacing=24)
    image = _dotted(100, 200, people)
    out_image, keypoints, ignore, placement = evaluation(368)(image, {"keypoints": people})
    assert placement == Placement(100, 200, 184, 368)
    assert ignore[184:].all() and not ignore[:184].any()
    assert out_image[:, 184:].abs().max() < 0.02
    assert torch.equal(keypoints[..., 2], people[..., 2])
    assert _check_dots(out_image, keypoints, ignore) >= 10


def test_to_original_inverts_evaluation_exactly():
    people = _grid_people(100, 200, 1, spacing=24)
    people[0, 5] = 0  # unlabelled stays (0, 0, 0)
    image = tv_tensors.Image(torch.zeros(3, 100, 200, dtype=torch.uint8))
    _, keypoints, _, placement = evaluation(368)(image, {"keypoints": people})
    assert torch.allclose(to_original(keypoints, placement), people, atol=1e-4)
    assert keypoints[0, 5].tolist() == [0.0, 0.0, 0.0]
    # A point on the centre of the resized image's first pixel is the centre of the first original
    # pixel's scaled footprint: x = (0 + 0.5) / 1.84 - 0.5.
    assert to_original(torch.tensor([[0.0, 0.0, 1.0]]), placement)[0, 0].item() == pytest.approx(0.5 / 1.84 - 0.5)
    predicted = np.array([[[183.5, 91.5, 0.7]]], dtype=np.float32)
    back = to_original(predicted, placement)
    assert isinstance(back, np.ndarray)
    np.testing.assert_allclose(to_input(back, placement), predicted, atol=1e-4)
