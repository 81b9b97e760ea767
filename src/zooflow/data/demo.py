"""Deterministic demo datasets, built from data that installed packages ship, written in the
real on-disk formats a user's own data would have."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from zooflow.data.imagefolder import write_classes

DEMO_SEED = 20190722  # any fixed value: the demo data must be byte-identical on every machine
CLASSIFICATION_SIDE = 64
CLASSIFICATION_VAL_PER_CLASS = 30

ATTRIBUTION = """\
# Demo data: faces vs non-faces

Built by `zooflow data demo` from scikit-image's `skimage.data.lfw_subset()`: 100 face crops
from Labeled Faces in the Wild (LFW, University of Massachusetts Amherst) and 100 non-face
patches, 25x25 grey. Each is upscaled (bicubic) to {side}x{side} RGB JPEG and split,
seeded, into {val} validation images per class and the rest for training.

LFW: G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller, "Labeled Faces in the Wild: A Database
for Studying Face Recognition in Unconstrained Environments", UMass Amherst TR 07-49, 2007.
"""


def build_classification(folder: Path) -> dict[str, int]:
    """Write the faces-vs-non-faces ImageFolder set into ``folder``; counts per split/class."""
    from skimage.data import lfw_subset  # a real image set that ships inside scikit-image

    images = lfw_subset()  # (200, 25, 25) floats in [0, 1]: 100 faces, then 100 non-faces
    groups = {"face": images[:100], "nonface": images[100:]}
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(DEMO_SEED)
    counts: dict[str, int] = {}
    for label, group in groups.items():
        order = rng.permutation(len(group))
        for rank, index in enumerate(order):
            split = "val" if rank < CLASSIFICATION_VAL_PER_CLASS else "train"
            target = folder / split / label / f"{label}_{index:03d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            grey = Image.fromarray(np.round(group[index] * 255).astype(np.uint8), mode="L")
            grey.resize((CLASSIFICATION_SIDE, CLASSIFICATION_SIDE), Image.Resampling.BICUBIC) \
                .convert("RGB").save(target, format="JPEG", quality=95)
            counts[f"{split}/{label}"] = counts.get(f"{split}/{label}", 0) + 1
    write_classes(folder, list(groups))
    (folder / "README.md").write_text(ATTRIBUTION.format(side=CLASSIFICATION_SIDE, val=CLASSIFICATION_VAL_PER_CLASS))
    return counts


# Each task adds its builder here; `zooflow data demo` builds them all into data/<folder>.
BUILDERS = {"classification": build_classification}
