"""The skeleton of OpenPose (Cao et al., 2017) on COCO keypoints: part names and order, the limbs
whose part affinity fields (PAFs) the network predicts, the left/right swap of a horizontal flip,
and the conversion between COCO's 17 keypoints and OpenPose's 18 parts.

COCO annotates 17 keypoints per person as ``(x, y, v)``: ``v = 0`` not labelled (x = y = 0),
``v = 1`` labelled but not visible, ``v = 2`` labelled and visible. Coordinates are pixel indices
(pixel ``j``'s centre is at ``x = j``), so a horizontal flip maps ``x`` to ``width - 1 - x``.

OpenPose adds an 18th part, the neck, the midpoint of the two shoulders, and orders the parts as
CMU's released models and the book do (:data:`PARTS`): nose, neck, then the right arm, left arm,
right leg, left leg, and the eyes and ears, right before left. The network's 19 heatmap channels
are these 18 parts followed by the background.

A limb is an ordered pair of parts ``(a, b)``; its PAF is the unit vector from ``a`` to ``b`` on the
limb's pixels. :data:`LIMBS` lists CMU's 19 limbs in the order of their channels in the network's
output, so limb ``k`` owns PAF channels ``2k`` (x component) and ``2k + 1`` (y component), 38 in
all: the layout of CMU's released weights, which the book loads. Seventeen limbs form a tree from
the neck; the other two (shoulder to ear) are redundant ones that CMU added to help people seen
from behind or in profile, and never start a person when people are assembled.
"""

from __future__ import annotations

import numpy as np

COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                  "left_knee", "right_knee", "left_ankle", "right_ankle")

PARTS = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
         "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
         "right_eye", "left_eye", "right_ear", "left_ear")
NECK = PARTS.index("neck")
BACKGROUND = len(PARTS)          # the heatmaps' last channel
HEATMAP_CHANNELS = len(PARTS) + 1  # 19

# COCO_TO_OPENPOSE[c] is the OpenPose part of COCO keypoint c.
COCO_TO_OPENPOSE = tuple(PARTS.index(name) for name in COCO_KEYPOINTS)

_P = PARTS.index
# In PAF channel order (see the module docstring); each limb points from its first part to its second.
LIMBS = ((_P("neck"), _P("right_hip")), (_P("right_hip"), _P("right_knee")), (_P("right_knee"), _P("right_ankle")),
         (_P("neck"), _P("left_hip")), (_P("left_hip"), _P("left_knee")), (_P("left_knee"), _P("left_ankle")),
         (_P("neck"), _P("right_shoulder")), (_P("right_shoulder"), _P("right_elbow")),
         (_P("right_elbow"), _P("right_wrist")), (_P("right_shoulder"), _P("right_ear")),
         (_P("neck"), _P("left_shoulder")), (_P("left_shoulder"), _P("left_elbow")),
         (_P("left_elbow"), _P("left_wrist")), (_P("left_shoulder"), _P("left_ear")),
         (_P("neck"), _P("nose")), (_P("nose"), _P("right_eye")), (_P("nose"), _P("left_eye")),
         (_P("right_eye"), _P("right_ear")), (_P("left_eye"), _P("left_ear")))
PAF_CHANNELS = tuple((2 * k, 2 * k + 1) for k in range(len(LIMBS)))  # (x, y) channels of limb k
REDUNDANT_LIMBS = (LIMBS.index((_P("right_shoulder"), _P("right_ear"))),
                   LIMBS.index((_P("left_shoulder"), _P("left_ear"))))
# The order in which people are assembled: CMU's, outward from the neck so that a limb's first part
# is usually placed before it (torso and arms, legs, head), the redundant limbs last.
ASSEMBLY_ORDER = tuple(LIMBS.index(limb) for limb in (
    (_P("neck"), _P("right_shoulder")), (_P("neck"), _P("left_shoulder")),
    (_P("right_shoulder"), _P("right_elbow")), (_P("right_elbow"), _P("right_wrist")),
    (_P("left_shoulder"), _P("left_elbow")), (_P("left_elbow"), _P("left_wrist")),
    (_P("neck"), _P("right_hip")), (_P("right_hip"), _P("right_knee")), (_P("right_knee"), _P("right_ankle")),
    (_P("neck"), _P("left_hip")), (_P("left_hip"), _P("left_knee")), (_P("left_knee"), _P("left_ankle")),
    (_P("neck"), _P("nose")), (_P("nose"), _P("right_eye")), (_P("right_eye"), _P("right_ear")),
    (_P("nose"), _P("left_eye")), (_P("left_eye"), _P("left_ear")),
    (_P("right_shoulder"), _P("right_ear")), (_P("left_shoulder"), _P("left_ear"))))


def _mirror(name: str) -> str:
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name[len(side):]
    return name


# Horizontal flip: after mirroring an image, the person's left parts are where the right ones
# were. FLIP_PARTS[p] is the part whose map (or keypoint) becomes part p's; it is its own inverse.
FLIP_PARTS = tuple(PARTS.index(_mirror(name)) for name in PARTS)
# A mirrored limb keeps its direction (e.g. neck -> right hip becomes neck -> left hip); its PAF's
# x component changes sign besides moving to the mirrored limb's channels.
FLIP_LIMBS = tuple(LIMBS.index((FLIP_PARTS[a], FLIP_PARTS[b])) for a, b in LIMBS)


def coco_to_openpose(keypoints) -> np.ndarray:
    """OpenPose parts ``[..., 18, 3]`` (float32) from COCO keypoints ``[..., 17, 3]``.

    The neck is the midpoint of the two shoulders and is labelled only when both are (``v >= 1``);
    its ``v`` is the smaller of theirs (visible only when both are). Otherwise it is ``(0, 0, 0)``.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape[-2:] != (len(COCO_KEYPOINTS), 3):
        raise ValueError(f"COCO keypoints must be [..., 17, 3], got {keypoints.shape}")
    parts = np.zeros(keypoints.shape[:-2] + (len(PARTS), 3), dtype=np.float32)
    parts[..., COCO_TO_OPENPOSE, :] = keypoints
    left, right = keypoints[..., COCO_KEYPOINTS.index("left_shoulder"), :], \
        keypoints[..., COCO_KEYPOINTS.index("right_shoulder"), :]
    both = (left[..., 2] >= 1) & (right[..., 2] >= 1)
    parts[..., NECK, :2] = np.where(both[..., None], (left[..., :2] + right[..., :2]) / 2, 0.0)
    parts[..., NECK, 2] = np.where(both, np.minimum(left[..., 2], right[..., 2]), 0.0)
    return parts


def openpose_to_coco(parts) -> np.ndarray:
    """COCO keypoints ``[..., 17, 3]`` from OpenPose parts ``[..., 18, 3]`` (the neck is dropped)."""
    parts = np.asarray(parts)
    if parts.shape[-2:] != (len(PARTS), 3):
        raise ValueError(f"OpenPose parts must be [..., 18, 3], got {parts.shape}")
    return parts[..., COCO_TO_OPENPOSE, :]


def flip_people(parts, width: int) -> np.ndarray:
    """OpenPose parts ``[..., 18, 3]`` of people after a horizontal flip of an image ``width``
    pixels wide: ``x -> width - 1 - x`` for labelled parts, and left and right swapped."""
    parts = np.array(parts, dtype=np.float32)
    labelled = parts[..., 2] >= 1
    parts[..., 0] = np.where(labelled, width - 1 - parts[..., 0], parts[..., 0])
    return parts[..., FLIP_PARTS, :]
