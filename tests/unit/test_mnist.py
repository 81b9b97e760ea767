"""MNIST in its real on-disk format: idx files read (by us and torchvision), imported from idx or
digit folders, and validation naming the bad files and rows."""

import gzip
import shutil

import numpy as np
import pytest
import torchvision
from PIL import Image

from zooflow import config
from zooflow.data import mnist
from zooflow.data.demo import build_mnist
from zooflow.tasks.anomaly import TASK
from zooflow.tasks.base import RunContext
from zooflow.validation.runner import validate


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    build_mnist(root / "anomaly")
    return root


def fresh_copy(digits, tmp_path):
    shutil.copytree(digits / "anomaly", tmp_path / "anomaly")
    return tmp_path


def context(data_root):
    cfg = config.resolve("anomaly", "efficientgan", "smoke")
    return RunContext(cfg=cfg, info=TASK.data_info(cfg, data_root), data_root=data_root)


def test_demo_digits_are_real_idx_files_that_torchvision_reads(digits):
    ours = mnist.load_split(digits / "anomaly", "train")
    theirs = torchvision.datasets.MNIST(str(digits / "anomaly"), train=True, download=False)
    assert len(theirs) == 4000 and ours.images.shape == (3200, 28, 28)  # 4,000 in the file, 1 in 5 is val
    image, label = theirs[int(ours.index[0])]
    assert np.array_equal(np.asarray(image), ours.images[0]) and label == ours.labels[0]
    test = mnist.load_split(digits / "anomaly", "test")
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert np.bincount(mnist.load_split(digits / "anomaly", "val").labels).tolist() == [80] * 10
    assert "CC BY-SA 3.0" in (digits / "anomaly" / "README.md").read_text()


def test_demo_digits_pass_validation(digits):
    ctx = context(digits)
    report = validate(TASK.manifest(ctx), TASK.expectations(ctx), "mnist")
    assert report.success, report.failures


def test_idx_header_errors_name_the_file(tmp_path):
    good = mnist.write_idx(tmp_path / "x-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    assert mnist.read_idx(good).shape == (3, 28, 28)
    truncated = tmp_path / "cut-idx3-ubyte"
    truncated.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(mnist.IdxFormatError, match=r"cut-idx3-ubyte: header says shape \(3, 28, 28\)"):
        mnist.read_idx(truncated)
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x01\x02" + good.read_bytes()[2:])
    with pytest.raises(mnist.IdxFormatError, match="bad-idx3-ubyte: not an idx file"):
        mnist.read_idx(bad)


def test_validation_names_bad_rows_and_files(digits, tmp_path):
    root = fresh_copy(digits, tmp_path)
    raw = root / "anomaly" / mnist.RAW
    labels = bytearray((raw / "train-labels-idx1-ubyte").read_bytes())
    labels[8 + 5] = 12  # image 5 of the training file gets a label that is no digit
    (raw / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    images = mnist.read_idx(raw / "train-images-idx3-ubyte").copy()
    test_images = mnist.read_idx(raw / "t10k-images-idx3-ubyte")
    images[9] = test_images[3]  # a test image leaks into the training file
    mnist.write_idx(raw / "train-images-idx3-ubyte", images)
    ctx = context(root)
    report = validate(TASK.manifest(ctx), TASK.expectations(ctx), "mnist")
    text = "\n".join(report.failures)
    assert not report.success
    assert "anomaly/MNIST/raw/train-images-idx3-ubyte#5: label='12'" in text
    assert "anomaly/MNIST/raw/train-images-idx3-ubyte#9: in_other_split=True" in text
    assert "anomaly/MNIST/raw/t10k-images-idx3-ubyte#3: in_other_split=True" in text


def test_a_truncated_file_fails_validation_by_name(digits, tmp_path):
    root = fresh_copy(digits, tmp_path)
    file = root / "anomaly" / mnist.RAW / "t10k-labels-idx1-ubyte"
    file.write_bytes(file.read_bytes()[:-1])
    ctx = context(root)
    report = validate(TASK.manifest(ctx), TASK.expectations(ctx), "mnist")
    assert not report.success
    assert any("t10k-images-idx3-ubyte: error=" in line and "t10k-labels-idx1-ubyte: header says" in line
               for line in report.failures), report.failures


def test_import_from_gzipped_idx_and_from_digit_folders(digits, tmp_path):
    raw = tmp_path / "download" / "raw"
    raw.mkdir(parents=True)
    for file in (digits / "anomaly" / mnist.RAW).iterdir():
        (raw / (file.name + ".gz")).write_bytes(gzip.compress(file.read_bytes()))
    assert TASK.import_data(tmp_path / "download", tmp_path / "a").classes == tuple(str(d) for d in range(10))
    assert (tmp_path / "a" / mnist.RAW / "train-images-idx3-ubyte").read_bytes() == \
        (digits / "anomaly" / mnist.RAW / "train-images-idx3-ubyte").read_bytes()

    test = mnist.load_split(digits / "anomaly", "test")
    folders = tmp_path / "pngs"
    for split in ("train", "test"):
        for i in range(20):
            target = folders / split / str(test.labels[i]) / f"{split}{i}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(test.images[i]).save(target)
    # every digit in both splits: the same 20 images would be a leak, but this test is about the format
    for split in ("train", "test"):
        for i in range(20, 40):
            target = folders / split / str(test.labels[i % 10 * 10 + 5]) / f"{split}{i}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(test.images[i % 10 * 10 + 5]).save(target)
    imported = TASK.import_data(folders, tmp_path / "b")
    assert imported.classes == tuple(sorted({p.name for p in (folders / "train").iterdir()}))
    imported = mnist.read_idx(tmp_path / "b" / mnist.RAW / "t10k-images-idx3-ubyte")
    assert imported.shape == (40, 28, 28)
    Image.new("L", (32, 32)).save(folders / "train" / str(test.labels[0]) / "big.png")
    with pytest.raises(mnist.IdxFormatError, match=r"big.png: MNIST-format images must be 28x28, got 32x32"):
        TASK.import_data(folders, tmp_path / "c")


def test_gzip_errors_and_bad_labels_are_named(tmp_path):
    good = mnist.write_idx(tmp_path / "x-idx1-ubyte", np.arange(10, dtype=np.uint8))
    cut = tmp_path / "cut-idx1-ubyte.gz"
    cut.write_bytes(gzip.compress(good.read_bytes())[:-12])
    with pytest.raises(mnist.IdxFormatError, match="cut-idx1-ubyte.gz: not a complete gzip file"):
        mnist.read_idx(cut)
    fake = tmp_path / "fake-idx1-ubyte.gz"
    fake.write_bytes(b"not gzip at all")
    with pytest.raises(mnist.IdxFormatError, match="fake-idx1-ubyte.gz: not a complete gzip file"):
        mnist.read_idx(fake)
    unnamed = tmp_path / "plain-idx1-ubyte"
    unnamed.write_bytes(gzip.compress(good.read_bytes()))
    with pytest.raises(mnist.IdxFormatError, match="it is gzipped: name it .gz"):
        mnist.read_idx(unnamed)
    with pytest.raises(mnist.IdxFormatError, match="label 12 at index 3 is not a label 0-9"):
        mnist._check_labels(np.array([1, 2, 3, 12, 4], dtype=np.uint8), good)


def test_pca_baseline_beats_the_mean_image_on_the_demo_digits(digits):
    """The figures the README and the anomaly card quote: on the whole demo test split (normal 7
    and 8), the 8-component PCA reconstruction error (L2) scores AUROC 0.817, the mean image 0.662."""
    ctx = context(digits)
    ctx = RunContext(cfg=ctx.cfg.model_copy(update={"max_eval_samples": None}), info=ctx.info, data_root=digits)
    found = TASK.baseline(ctx)
    assert found["pca"]["auroc"] == pytest.approx(0.817, abs=0.005)
    assert found["mean_image"]["auroc"] == pytest.approx(0.662, abs=0.005)
    assert {"auroc_class_1", "detected_class_1"} <= set(found["pca"])
