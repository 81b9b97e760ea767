"""`zooflow data import`: a user's ImageFolder (the book's hymenoptera layout) becomes a new
data version that the pipeline's validation accepts."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from zooflow.cli import app
from zooflow.data import store
from zooflow.data.imagefolder import read_classes


def hymenoptera_like(folder, per_class=6):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("ants", "bees"):
            (folder / split / label).mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, size=(40 + index, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / label / f"{label}_{split}_{index}.jpg")
    (folder / "train" / ".DS_Store").write_text("finder litter")  # skipped on import
    return folder


def test_import_records_a_new_data_version(project, tmp_path):
    before = store.version(project, "classification")
    source = hymenoptera_like(tmp_path / "hymenoptera_data")
    result = CliRunner().invoke(app, ["data", "import", "classification", str(source)])
    assert result.exit_code == 0, result.output
    folder = project / "data" / "classification"
    assert read_classes(folder) == ["ants", "bees"]
    assert not (folder / "train" / "face").exists() and not (folder / "train" / ".DS_Store").exists()
    after = store.version(project, "classification")
    assert after.task_md5 != before.task_md5 and after.files == 24 + 1
    assert "skipped 1 operating-system file(s): train/.DS_Store" in result.output
    assert store.is_clean(project)

    status = CliRunner().invoke(app, ["data", "status"])
    assert status.exit_code == 0, status.output
    assert f"classification: data/classification {after.tag} (25 files): matches data.dvc" in status.output


def test_import_rejects_a_folder_without_splits(project, tmp_path):
    (tmp_path / "flat" / "ants").mkdir(parents=True)
    result = CliRunner().invoke(app, ["data", "import", "classification", str(tmp_path / "flat")])
    assert result.exit_code != 0
    assert "not an ImageFolder dataset: no train, val" in str(result.exception)


def test_import_an_aclimdb_folder_and_a_tsv(project, tmp_path):
    source = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for label, text in (("pos", "a wonderful film"), ("neg", "a dull film")):
            (source / split / label).mkdir(parents=True)
            for index in range(5):
                (source / split / label / f"{index}_7.txt").write_text(f"{text} number {split} {index}")
    (source / "train" / "unsup").mkdir()
    (source / "train" / "unsup" / "0_0.txt").write_text("unlabelled")
    (source / "train" / "labeledBow.feat").write_text("0 0:1")
    result = CliRunner().invoke(app, ["data", "import", "sentiment", str(source)])
    assert result.exit_code == 0, result.output
    folder = project / "data" / "sentiment-en"
    assert read_classes(folder) == ["neg", "pos"] and not (folder / "train" / "unsup").exists()
    assert len(list(folder.rglob("*.txt"))) == 20 + 1  # 20 reviews + classes.txt
    assert "note: left out train/unsup/ (unlabelled reviews)" in result.output

    table = tmp_path / "reviews.tsv"
    table.write_text("text\tlabel\n" + "".join(f"良い商品です{i}\tpos\n悪い商品です{i}\tneg\n" for i in range(25)),
                     encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "import", "sentiment-ja", str(table)])
    assert result.exit_code == 0, result.output
    ja = project / "data" / "sentiment-ja"
    assert len(list((ja / "test").rglob("*.txt"))) == 10  # seeded stratified 20 % per label
    assert store.is_clean(project)
