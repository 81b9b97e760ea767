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
    assert store.is_clean(project)

    status = CliRunner().invoke(app, ["data", "status"])
    assert status.exit_code == 0 and after.tag in status.output and "matches data.dvc: True" in status.output


def test_import_rejects_a_folder_without_splits(project, tmp_path):
    (tmp_path / "flat" / "ants").mkdir(parents=True)
    result = CliRunner().invoke(app, ["data", "import", "classification", str(tmp_path / "flat")])
    assert result.exit_code != 0
    assert "not an ImageFolder dataset: no train, val" in str(result.exception)
