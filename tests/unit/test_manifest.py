import pytest

from zooflow.data.imagefolder import DeclaredImageFolder, manifest, read_classes


def test_manifest_has_one_row_per_image_with_facts(image_folder):
    table = manifest(image_folder)
    assert len(table) == 200
    assert set(table["split"]) == {"train", "val"} and set(table["label"]) == {"face", "nonface"}
    assert table["decodes"].all() and (table["width"] == 64).all() and (table["mode"] == "RGB").all()
    assert table.loc[table["split_label"] == "val/face", "class_count"].iloc[0] == 30
    assert not table["in_other_split"].any()
    assert table["sha256"].str.len().eq(64).all()


def test_manifest_flags_corrupt_and_leaked_images(image_folder):
    first = sorted((image_folder / "train" / "face").iterdir())[0]
    (image_folder / "val" / "face" / "leak.jpg").write_bytes(first.read_bytes())
    broken = sorted((image_folder / "train" / "nonface").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:300])
    (image_folder / "train" / "face" / "notes.txt").write_text("not an image")
    table = manifest(image_folder).set_index("path")
    assert table.loc["val/face/leak.jpg", "in_other_split"]
    assert table.loc[f"train/face/{first.name}", "in_other_split"]
    assert not table.loc[f"train/nonface/{broken.name}", "decodes"]
    assert "cannot decode" in table.loc[f"train/nonface/{broken.name}", "error"]
    assert "not an image" in table.loc["train/face/notes.txt", "error"]


def test_missing_split_folder_is_an_error(image_folder):
    import shutil

    shutil.rmtree(image_folder / "val")
    with pytest.raises(FileNotFoundError, match="val"):
        manifest(image_folder)


def test_classes_file_is_required_and_orders_labels(image_folder):
    (image_folder / "classes.txt").write_text("nonface\nface\n")
    dataset = DeclaredImageFolder(image_folder, "val")
    assert dataset.classes == ["nonface", "face"]
    assert dataset[0][1] == 1  # face images sort first but carry the declared label id
    (image_folder / "classes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        read_classes(image_folder)
