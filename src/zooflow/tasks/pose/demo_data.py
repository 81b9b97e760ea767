"""Chapter 4's demo data: a small multi-person pose set written in the COCO keypoints format.

Each image is a crop of one of scikit-image's sample photographs (shipped inside the wheel) with
one to three articulated stick figures drawn on it by this module, so every keypoint is exact:

- a figure comes from a small kinematic model: a torso with a random lean, a head turned by a
  random yaw (the face points are placed on a sphere and projected), and arms and legs with
  random joint angles within human-like limits, each segment foreshortened a little at random;
- it is drawn with thick limbs, a filled torso, joints as slightly larger discs and a filled
  head whose eyes, nose and ears are small discs of a second, contrasting colour, so a network
  must find a keypoint from the figure's shape; the body's colour is dark on bright backgrounds
  and light on dark ones; a one-pixel outline in the second colour goes round the body and
  round the head (over the neck), so overlapping figures stay apart;
- figures drawn later cover earlier ones, and some are cut by the image border.

Labels follow COCO's rules from the drawn pixels: a keypoint outside the image is unlabelled
``(0, 0, 0)``; inside it is ``v = 2`` where the figure's own pixels show at its (integer)
position and ``v = 1`` where a figure drawn later (or the figure's own head) covers it. A face
point turned away from the camera (the far ear of a head in profile) is not drawn and is
unlabelled, as COCO's annotators leave it. ``bbox`` and ``area`` are the figure's visible pixels
(their tight box and their count), ``segmentation`` is their convex hull. A figure with fewer
than ``MIN_VISIBLE`` visible keypoints is drawn again elsewhere, so no person goes unlabelled.

A figure is also drawn again when a shoulder would fall outside the image: OpenPose's limb tree
joins the head, the arms and the legs through the neck (the midpoint of both shoulders), so a
person with a shoulder cut off decodes as fragments even from perfect maps (on an earlier layout
that let shoulders go, 22 of 193 validation people did, and decoding the true maps scored an OKS
AP of 0.78). A covered shoulder (``v = 1``) keeps its position, so the neck stays; feet, hands
and heads still go beyond the border.

Every image has its own generator, seeded from ``DEMO_SEED``, the chapter and the image id, and
every coordinate is rounded to an integer pixel before anything is drawn or written, so the
files are the same on every machine and a label agrees exactly with its pixels.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zooflow.data import scenes
from zooflow.data.demo import DEMO_SEED
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

SPLITS = (("train", 320), ("val", 96))  # image ids are numbered in this order: train first, from 1
CHAPTER = 4  # mixed into the seed: these scenes are not the other chapters'
MAX_PEOPLE = 3
PERSON_HEIGHTS = (60, 200)  # top of the head to the feet when standing straight, pixels, inclusive
LEAN_DEGREES = 20  # the torso leans at most this far from upright
YAW_DEGREES = 60  # the head turns at most this far from facing the camera
FAR_EAR_DEGREES = 25  # beyond this yaw the far ear is behind the head: not drawn, unlabelled
MIN_VISIBLE = 3  # keypoints with v = 2 a person needs, or it is drawn again
SHOULDERS = (COCO_KEYPOINTS.index("left_shoulder"), COCO_KEYPOINTS.index("right_shoulder"))  # must be in the image
PLACEMENT_TRIES = 30
LAYOUT_TRIES = 20
OUTSIDE = 0.4  # up to this share of a figure's extent may lie beyond the image border
DARK, LIGHT = (0, 70), (190, 256)  # per-channel colour ranges (high end exclusive)
# Backgrounds: every scene photograph but the astronaut, whose suit and arms are a real person's
# (an unlabelled person in a pose set is a label error).
PHOTOS = tuple(name for name, _ in scenes.PHOTOS if name != "astronaut")

# Body proportions as shares of the standing height (roughly an adult's, head a little large so
# that the face points stay a few pixels apart on small figures).
HEAD_RADIUS = 0.075
NECK = 0.06  # shoulder line to the bottom of the head
TORSO = 0.30  # shoulder line to hip line
SHOULDER = 0.11  # half the shoulder width
HIP = 0.075  # half the hip width
UPPER_ARM, FOREARM = 0.17, 0.15
THIGH, SHIN = 0.24, 0.23
LIMB_WIDTH = (0.04, 0.07)  # limb thickness, random per person
JOINT = (1.1, 1.5)  # joint disc radius over half the limb width, random per person
FORESHORTEN = 0.75  # a segment keeps 75-100 % of its length (it points partly at the camera)
# Joint angles in degrees, measured from hanging straight down, outward positive.
ARM_RAISE = (-25, 170)
ELBOW_BEND = (0, 140)
LEG_SPREAD = (-10, 40)
KNEE_BEND = (0, 80)
# Face points on a unit-sphere head, (x toward the person's left, y down, z toward the camera).
FACE = {"nose": (0.0, 0.15, 1.0), "left_eye": (0.38, -0.18, 0.9), "right_eye": (-0.38, -0.18, 0.9),
        "left_ear": (1.0, 0.0, 0.0), "right_ear": (-1.0, 0.0, 0.0)}
FEATURE_RADIUS = {"nose": 0.22, "left_eye": 0.16, "right_eye": 0.16, "left_ear": 0.24, "right_ear": 0.24}

CATEGORY = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
            # COCO's own 19 limbs, 1-based keypoint numbers, as person_keypoints_*.json ship them.
            "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                         [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]}

_K = COCO_KEYPOINTS.index
# The body's drawn segments (thick lines with a disc at each end).
_BONES = ((_K("left_shoulder"), _K("left_elbow")), (_K("left_elbow"), _K("left_wrist")),
          (_K("right_shoulder"), _K("right_elbow")), (_K("right_elbow"), _K("right_wrist")),
          (_K("left_hip"), _K("left_knee")), (_K("left_knee"), _K("left_ankle")),
          (_K("right_hip"), _K("right_knee")), (_K("right_knee"), _K("right_ankle")))
_TORSO = (_K("left_shoulder"), _K("right_shoulder"), _K("right_hip"), _K("left_hip"))

ATTRIBUTION = """\
# Demo data: stick figures (multi-person pose estimation, COCO keypoints format)

Built by `zooflow.tasks.pose.demo_data.build_pose`, seeded, so the files are the same on every
machine. The layout is COCO's: `annotations/person_keypoints_train.json` and
`person_keypoints_val.json` (one `person` category with COCO's 17 keypoints and 19-limb
skeleton), images in `train/` and `val/`.

Each image is a random crop, at a random scale, of one of scikit-image's sample photographs,
resized to a width and a height drawn between {side_lo} and {side_hi} pixels. On it the builder draws 1 to
{max_people} stick figures, {h_lo} to {h_hi} pixels tall, posed by a small kinematic model (torso lean up to
{lean} degrees, head yaw up to {yaw} degrees, random shoulder, elbow, hip and knee angles): thick
limbs, a filled torso, joints as slightly larger discs, a filled head with eyes, nose and ears in
a second colour, and a one-pixel outline in that colour round the body and round the head.
Figures drawn later cover earlier ones; some are cut by the image border, but never at the
shoulders (OpenPose joins a person's parts through the neck, the midpoint of the shoulders).

Keypoints are integer pixel positions (pixel `j`'s centre at `x = j`). `v = 2`: the figure's
own pixels show there; `v = 1`: a figure drawn later, or the figure's own head, covers it
(a figure's pixels include its one-pixel outline);
`(0, 0, 0)`: outside the image, or a far ear turned away from the camera (beyond {far_ear} degrees of
yaw), which is not drawn. `bbox` and `area` are the tight box and the count of the person's
visible pixels, `segmentation` their convex hull. Every person has at least {min_visible} visible keypoints.

| split | images | people | labelled keypoints | of them v = 1 (covered) |
|---|---|---|---|---|
{rows}

## Sources and licences

- Backgrounds: scikit-image's `skimage.data` sample photographs
  {photos}.
  The `skimage.data` documentation gives each one's source and licence: public domain (NASA:
  Hubble eXtreme Deep Field; SpaceX: rocket), CC0 (coffee, Chelsea the cat, retina), or "no
  known copyright restrictions" (Greek coins, Brooklyn Museum; immunohistochemistry slide,
  CMMI). The astronaut photograph of the other demo sets is left out: it shows a real person,
  who would be an unlabelled person here.
- Figures: drawn by the builder; no third-party content.
"""


@dataclass
class Person:
    """One drawn figure: integer keypoints ``[17, 2]`` (x, y), which ones are drawn (a far ear
    is not), its look, and after rendering its masks and labels."""

    points: np.ndarray
    drawn: np.ndarray
    head: tuple[int, int, int]  # centre x, centre y, radius
    width: int  # limb thickness
    joint: int  # joint disc radius
    body: np.ndarray | None = None  # its pixels other than the head, outline included (bool, image-sized)
    face: np.ndarray | None = None  # its head disc, face points and their outline (bool, image-sized)
    inner_body: np.ndarray | None = None  # ``body`` less the outline: drawn in ``colour``
    inner_face: np.ndarray | None = None  # ``face`` less the outline: drawn in ``colour``
    features: np.ndarray | None = None  # its face points' discs (bool, image-sized)
    colour: tuple[int, int, int] = (0, 0, 0)
    feature_colour: tuple[int, int, int] = (255, 255, 255)
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((len(COCO_KEYPOINTS), 3), dtype=np.int64))
    visible: np.ndarray | None = None  # its pixels that nothing later covers


def _unit(degrees: float) -> tuple[float, float]:
    """The image direction (x, y; y down) ``degrees`` from straight down, positive toward +x."""
    radians = math.radians(degrees)
    return math.sin(radians), math.cos(radians)


def pose(rng: np.random.Generator) -> Person:
    """A random figure standing at the origin (its pelvis), in float pixels rounded to integers.

    Scalar ``math`` functions only: their results are the same wherever the same libm runs, and
    rounding to integers absorbs any last-bit difference short of an exact half.
    """
    height = float(rng.integers(PERSON_HEIGHTS[0], PERSON_HEIGHTS[1] + 1))
    lean = float(rng.uniform(-LEAN_DEGREES, LEAN_DEGREES))
    yaw = float(rng.uniform(-YAW_DEGREES, YAW_DEGREES))
    down = _unit(lean)  # along the torso, toward the feet
    side = (down[1], -down[0])  # toward the person's left: image right when facing the camera
    turn = math.cos(math.radians(yaw))  # the body turns with the head and narrows as it does
    points = np.zeros((len(COCO_KEYPOINTS), 2))

    def at(origin, direction, length):
        return origin[0] + direction[0] * length, origin[1] + direction[1] * length

    pelvis = (0.0, 0.0)
    neck = at(pelvis, down, -TORSO * height)
    for sign, prefix in ((1, "left_"), (-1, "right_")):
        shoulder = at(neck, side, sign * SHOULDER * height * turn)
        hip = at(pelvis, side, sign * HIP * height * turn)
        # Each limb: its first segment's angle from the torso's "down", outward positive, then
        # the joint's bend (either way: seen from the front, a bent limb may point either side).
        raise_ = lean + sign * float(rng.uniform(*ARM_RAISE))
        elbow = at(shoulder, _unit(raise_), UPPER_ARM * height * float(rng.uniform(FORESHORTEN, 1)))
        bend = float(rng.uniform(*ELBOW_BEND)) * (1 if rng.random() < 0.5 else -1)
        wrist = at(elbow, _unit(raise_ + bend), FOREARM * height * float(rng.uniform(FORESHORTEN, 1)))
        spread = lean + sign * float(rng.uniform(*LEG_SPREAD))
        knee = at(hip, _unit(spread), THIGH * height * float(rng.uniform(FORESHORTEN, 1)))
        bend = float(rng.uniform(*KNEE_BEND)) * (1 if rng.random() < 0.5 else -1)
        ankle = at(knee, _unit(spread + bend), SHIN * height * float(rng.uniform(FORESHORTEN, 1)))
        for name, point in (("shoulder", shoulder), ("hip", hip), ("elbow", elbow), ("wrist", wrist),
                            ("knee", knee), ("ankle", ankle)):
            points[_K(prefix + name)] = point
    radius = HEAD_RADIUS * height
    centre = at(neck, down, -(NECK * height + radius))
    drawn = np.ones(len(COCO_KEYPOINTS), dtype=bool)
    sin_yaw = math.sin(math.radians(yaw))
    for name, (x, y, z) in FACE.items():
        # Turn the head about its vertical axis, then project: x across, y down the lean.
        across, depth = x * turn + z * sin_yaw, -x * sin_yaw + z * turn
        points[_K(name)] = at(at(centre, side, across * radius), down, y * radius)
        drawn[_K(name)] = depth > -math.sin(math.radians(FAR_EAR_DEGREES))
    width = max(3, round(height * float(rng.uniform(*LIMB_WIDTH))))
    joint = max(2, round(width / 2 * float(rng.uniform(*JOINT))))
    head = (round(centre[0]), round(centre[1]), max(4, round(radius)))
    return Person(np.round(points).astype(np.int64), drawn, head, width, joint)


def _shift(person: Person, dx: int, dy: int) -> Person:
    """The same figure moved by whole pixels."""
    x, y, radius = person.head
    return Person(person.points + np.array([dx, dy]), person.drawn, (x + dx, y + dy, radius),
                  person.width, person.joint)


def _extent(person: Person) -> tuple[int, int, int, int]:
    """The figure's box (left, top, right, bottom; inclusive), joint discs and head included."""
    x, y, radius = person.head
    reach = person.joint + person.width
    low, high = person.points.min(axis=0) - reach, person.points.max(axis=0) + reach
    return (min(int(low[0]), x - radius), min(int(low[1]), y - radius),
            max(int(high[0]), x + radius), max(int(high[1]), y + radius))


def place(rng: np.random.Generator, person: Person, width: int, height: int) -> Person:
    """The figure moved to a random spot where at least ``1 - OUTSIDE`` of its extent across
    each axis lies inside the ``width`` x ``height`` image."""
    left, top, right, bottom = _extent(person)
    span_x, span_y = right - left + 1, bottom - top + 1
    slack_x, slack_y = math.floor(OUTSIDE * span_x), math.floor(OUTSIDE * span_y)
    # The figure's left edge goes anywhere from slack_x beyond the left border to slack_x beyond the
    # right one (a figure wider than the image is then cut on both sides, which is fine).
    new_left = int(rng.integers(-slack_x, max(width - span_x + slack_x, -slack_x) + 1))
    new_top = int(rng.integers(-slack_y, max(height - span_y + slack_y, -slack_y) + 1))
    return _shift(person, new_left - left, new_top - top)


def _disc(draw: ImageDraw.ImageDraw, x: int, y: int, radius: int) -> None:
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=1)


def grow(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel (a 3 x 3 dilation; the image's edge adds nothing)."""
    padded = np.pad(mask, 1)
    grown = mask.copy()
    for dy in range(3):
        for dx in range(3):
            grown |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return grown


def masks(person: Person, width: int, height: int) -> Person:
    """Draw the figure's masks on a ``width`` x ``height`` image: its body and its head, each
    with a one-pixel outline (which keeps two overlapping figures of like colours apart), and
    its face points."""
    body, face, features = (Image.new("1", (width, height), 0) for _ in range(3))
    pen = ImageDraw.Draw(body)
    points = [tuple(int(value) for value in point) for point in person.points]
    neck = ((points[_K("left_shoulder")][0] + points[_K("right_shoulder")][0]) // 2,
            (points[_K("left_shoulder")][1] + points[_K("right_shoulder")][1]) // 2)
    pen.polygon([points[index] for index in _TORSO], fill=1)
    pen.line([neck, person.head[:2]], fill=1, width=person.width)
    for a, b in _BONES:
        pen.line([points[a], points[b]], fill=1, width=person.width)
    for index in (*_TORSO, *{b for _, b in _BONES}):
        _disc(pen, *points[index], person.joint)
    head, spots = ImageDraw.Draw(face), ImageDraw.Draw(features)
    x, y, radius = person.head
    _disc(head, x, y, radius)
    for name, share in FEATURE_RADIUS.items():
        if person.drawn[_K(name)]:
            spot = max(1, round(share * radius))
            for pen in (head, spots):
                _disc(pen, *points[_K(name)], spot)
    body, face, features = (np.asarray(mask, dtype=bool) for mask in (body, face, features))
    person.inner_face = face
    person.face = grow(face)  # the head and its outline, drawn over the body
    person.inner_body = body & ~person.face
    person.body = grow(body | face) & ~person.face
    person.features = features
    return person


def label(people: list[Person], width: int, height: int) -> list[Person]:
    """Each person's keypoints ``[17, 3]`` and visible pixels, later figures covering earlier
    ones and a figure's head covering its own body."""
    for index, person in enumerate(people):
        later = np.zeros((height, width), dtype=bool)
        for other in people[index + 1:]:
            later |= other.body | other.face
        person.visible = (person.body | person.face) & ~later
        keypoints = np.zeros((len(COCO_KEYPOINTS), 3), dtype=np.int64)
        for number, ((x, y), drawn) in enumerate(zip(person.points.tolist(), person.drawn.tolist())):
            if not drawn or not (0 <= x < width and 0 <= y < height):
                continue
            on_face = COCO_KEYPOINTS[number] in FACE
            covered = later[y, x] or (not on_face and person.face[y, x])
            keypoints[number] = (x, y, 1 if covered else 2)
        person.keypoints = keypoints
    return people


def _luma_is_bright(pixels: np.ndarray) -> bool:
    """Whether the mean luma of ``pixels`` (N x 3 uint8) is above mid-grey, in integers: no float
    sum whose last bit could depend on the CPU."""
    luma = pixels.astype(np.int64) @ np.array([299, 587, 114], dtype=np.int64)
    return int(luma.sum()) > 128 * 1000 * len(luma)


def paint(rng: np.random.Generator, backdrop: Image.Image, people: list[Person]) -> Image.Image:
    """Draw the figures in order on ``backdrop``: each body in a colour against the mean luma of
    the background under it, its outlines and face points in a colour from the other end."""
    canvas = np.asarray(backdrop, dtype=np.uint8).copy()
    plain = np.asarray(backdrop, dtype=np.uint8)
    for person in people:
        pixels = person.body | person.face
        bright = _luma_is_bright(plain[pixels]) if pixels.any() else True
        body, feature = (DARK, LIGHT) if bright else (LIGHT, DARK)
        person.colour = tuple(int(value) for value in rng.integers(*body, size=3))
        person.feature_colour = tuple(int(value) for value in rng.integers(*feature, size=3))
        canvas[pixels] = person.feature_colour  # the outlines
        canvas[person.inner_body | person.inner_face] = person.colour
        canvas[person.features] = person.feature_colour
    return Image.fromarray(canvas, mode="RGB")


def _acceptable(people: list[Person]) -> bool:
    """Everyone shows ``MIN_VISIBLE`` keypoints and has both shoulders inside the image."""
    return all(int((person.keypoints[:, 2] == 2).sum()) >= MIN_VISIBLE
               and bool((person.keypoints[list(SHOULDERS), 2] > 0).all()) for person in people)


def scene(image_id: int, photos: list[Image.Image]) -> tuple[Image.Image, Image.Image, list[Person]]:
    """Image ``image_id``'s plain background, the drawn image (before JPEG) and its people.

    People are added one at a time; a new figure that would leave anyone (itself included) with
    under ``MIN_VISIBLE`` visible keypoints is placed again, and dropped after ``PLACEMENT_TRIES``.
    A layout that ends with nobody is drawn again (bounded).
    """
    rng = np.random.default_rng([DEMO_SEED, CHAPTER, image_id])
    for _ in range(LAYOUT_TRIES):
        backdrop = scenes.background(rng, photos)
        width, height = backdrop.size
        people: list[Person] = []
        for _ in range(int(rng.integers(1, MAX_PEOPLE + 1))):
            figure = pose(rng)
            for _ in range(PLACEMENT_TRIES):
                candidate = masks(place(rng, figure, width, height), width, height)
                if _acceptable(label([*people, candidate], width, height)):
                    people.append(candidate)
                    break
            label(people, width, height)  # a rejected candidate's labels must not stay
        if people:
            break
    return backdrop, paint(rng, backdrop, people), people


def hull(mask: np.ndarray) -> list[int]:
    """The convex hull of a mask's pixels (as unit squares) as a flat COCO polygon
    ``[x1, y1, x2, y2, ...]``, counter-clockwise in image coordinates; integers throughout."""
    rows = np.flatnonzero(mask.any(axis=1))
    corners = set()
    for row in rows.tolist():
        columns = np.flatnonzero(mask[row])
        for x in (int(columns[0]), int(columns[-1]) + 1):
            corners.update(((x, row), (x, row + 1)))
    ordered = sorted(corners)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[int, int]] = []
    upper: list[tuple[int, int]] = []
    for point in ordered:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], point) <= 0:
            lower.pop()
        lower.append(point)
    for point in reversed(ordered):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], point) <= 0:
            upper.pop()
        upper.append(point)
    return [value for point in lower[:-1] + upper[:-1] for value in point]


def annotation(person: Person, annotation_id: int, image_id: int) -> dict:
    """The COCO record of one person."""
    rows, columns = np.flatnonzero(person.visible.any(axis=1)), np.flatnonzero(person.visible.any(axis=0))
    left, top = int(columns[0]), int(rows[0])
    box = [left, top, int(columns[-1]) + 1 - left, int(rows[-1]) + 1 - top]
    return {"id": annotation_id, "image_id": image_id, "category_id": 1,
            "keypoints": [int(value) for value in person.keypoints.ravel()],
            "num_keypoints": int((person.keypoints[:, 2] > 0).sum()), "bbox": box,
            "area": int(person.visible.sum()), "iscrowd": 0, "segmentation": [hull(person.visible)]}


def build_pose(folder: Path, splits: tuple[tuple[str, int], ...] = SPLITS) -> dict[str, int]:
    """Write the stick-figure pose set in the COCO keypoints format into ``folder``; per split,
    the numbers of ``images``, ``people``, labelled ``keypoints`` and ``covered`` (v = 1) ones,
    keyed ``split/what``."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "annotations").mkdir(parents=True)
    chosen = [photo for (name, _), photo in zip(scenes.PHOTOS, scenes.photos()) if name in PHOTOS]
    counts: dict[str, int] = {}
    image_id = annotation_id = 0
    for split, size in splits:
        (folder / split).mkdir()
        images, annotations = [], []
        for _ in range(size):
            image_id += 1
            _, image, people = scene(image_id, chosen)
            file_name = f"demo_{image_id:05d}.jpg"
            image.save(folder / split / file_name, format="JPEG", quality=scenes.JPEG_QUALITY)
            images.append({"id": image_id, "file_name": file_name, "width": image.width, "height": image.height})
            for person in people:
                annotation_id += 1
                annotations.append(annotation(person, annotation_id, image_id))
        coco = {"info": {"description": "zooflow pose demo: stick figures on scikit-image photographs",
                         "version": "1.0", "year": 2019, "contributor": "zooflow",
                         "date_created": "2019-07-22"},  # fixed: the bytes must not depend on the day
                "licenses": [], "images": images, "annotations": annotations, "categories": [CATEGORY]}
        (folder / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(coco) + "\n")
        labels = [value for record in annotations for value in record["keypoints"][2::3]]
        counts.update({f"{split}/images": len(images), f"{split}/people": len(annotations),
                       f"{split}/keypoints": sum(value > 0 for value in labels),
                       f"{split}/covered": sum(value == 1 for value in labels)})
    (folder / "README.md").write_text(_readme(splits, counts))
    return counts


def _readme(splits: tuple[tuple[str, int], ...], counts: dict[str, int]) -> str:
    """The attribution README, with the counts filled in."""
    rows = []
    for split, _ in splits:
        keypoints, covered = counts[f"{split}/keypoints"], counts[f"{split}/covered"]
        rows.append(f"| {split} | {counts[f'{split}/images']} | {counts[f'{split}/people']} | {keypoints} | "
                    f"{covered} ({covered / max(keypoints, 1):.1%}) |")
    return ATTRIBUTION.format(
        side_lo=scenes.IMAGE_SIDES[0], side_hi=scenes.IMAGE_SIDES[1], max_people=MAX_PEOPLE,
        h_lo=PERSON_HEIGHTS[0], h_hi=PERSON_HEIGHTS[1], lean=LEAN_DEGREES, yaw=YAW_DEGREES,
        far_ear=FAR_EAR_DEGREES, min_visible=MIN_VISIBLE, rows="\n".join(rows),
        photos=", ".join(f"`{name}`" for name in PHOTOS))
