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


@pytest.mark.parametrize("text, message", [
    ("face\n", "declares 1 class"),
    ("face\nnonface\nface\n", r"line 3: the class 'face' is declared twice \(first on line 1\)"),
    ("face\nnon<face>\n", r"line 2: the class name 'non<face>' is not allowed"),
    ("face\nnon`face\n", r"line 2: the class name 'non`face' is not allowed"),
])
def test_classes_file_errors_name_the_file_and_line(image_folder, text, message):
    from zooflow.errors import InputRejected

    (image_folder / "classes.txt").write_text(text)
    with pytest.raises(InputRejected, match=message) as refused:
        read_classes(image_folder)
    assert "classes.txt" in str(refused.value)


def test_japanese_class_names_are_fine(image_folder):
    (image_folder / "classes.txt").write_text("\ufeffポジティブ\nネガティブ\n", encoding="utf-8")
    assert read_classes(image_folder) == ["ポジティブ", "ネガティブ"]


def test_manifest_records_conversions_and_never_raises(image_folder):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)).save(image_folder / "train" / "face" / "deep.png")
    from tests.unit.test_images import png_declaring

    (image_folder / "train" / "face" / "bomb.png").write_bytes(png_declaring(30_000, 30_000))
    import os

    os.symlink("/etc/passwd", image_folder / "train" / "face" / "passwd.jpg")
    table = manifest(image_folder).set_index("path")
    assert table.loc["train/face/deep.png", "converted"] == "16-bit->8-bit"
    assert table.loc["train/face/deep.png", "mode"] == "I;16" and table.loc["train/face/deep.png", "decodes"]
    assert not table.loc["train/face/bomb.png", "decodes"]
    assert "decompression bomb" in table.loc["train/face/bomb.png", "error"]
    assert "symbolic link" in table.loc["train/face/passwd.jpg", "error"]
    assert (table.drop(["train/face/deep.png", "train/face/bomb.png", "train/face/passwd.jpg"])["converted"] == "").all()


def test_the_dataset_loader_converts_16_bit_images(image_folder):
    import numpy as np
    from PIL import Image

    target = image_folder / "val" / "face" / "aaa_deep.png"
    Image.fromarray(np.full((32, 32), 32768, dtype=np.uint16)).save(target)
    dataset = DeclaredImageFolder(image_folder, "val")
    index = [path for path, _ in dataset.samples].index(str(target))
    image, _ = dataset[index]
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (128, 128, 128)
