"""Reading the Pascal VOC segmentation layout: split lists and class set, masks (palette or grey PNGs
of class ids, 255 = ignore), the manifest's flag for every fault on the row that has it, the Great
Expectations suite naming the files, the dataset the model trains on, and the importer that brings
a user's VOC download in. Every case is a small real VOC folder written under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import files_under
from zooflow.data.safety import ImportRejected
from zooflow.errors import InputRejected
from zooflow.tasks.segmentation import voc
from zooflow.tasks.segmentation.importer import import_voc_segmentation

SIZE = (64, 48)  # width, height of every generated image and mask
DEFAULT_SPLITS = {"train": ["img_0001", "img_0002", "img_0003", "img_0004"], "val": ["img_0005", "img_0006"]}
CLASSES = list(voc.SEGMENTATION_CLASSES)
ROOT = "VOCdevkit/VOC2012"


def write_image(path: Path, seed: int, size: tuple[int, int] = SIZE, **options) -> Path:
    """A random (so distinct) RGB image of ``size``, in the format its suffix names."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    return path


def mask_values(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A VOC-like mask: background, one object of class 1 + seed % 20 in a box, and a 255 ring
    around the box."""
    width, height = size
    values = np.zeros((height, width), dtype=np.uint8)
    values[9:31, 11:41] = voc.IGNORE
    values[10:30, 12:40] = 1 + seed % 20
    return values


def write_mask(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    voc.mask_image(values).save(path)
    return path


def write_voc(folder: Path, splits: dict[str, list[str]] | None = None, year: str = "VOC2012",
              classes: list[str] | None = None) -> Path:
    """A small valid VOC segmentation folder ``folder/VOCdevkit/<year>/``: every listed id has a
    distinct 64x48 JPEG and a palette mask; the VOC folder is returned."""
    splits = splits or DEFAULT_SPLITS
    root = folder / "VOCdevkit" / year
    for split, ids in splits.items():
        (root / voc.SPLIT_FOLDER).mkdir(parents=True, exist_ok=True)
        (root / voc.SPLIT_FOLDER / f"{split}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
    for seed, image_id in enumerate(dict.fromkeys(sum(splits.values(), []))):
        write_image(root / voc.IMAGES / f"{image_id}.jpg", seed)
        write_mask(root / voc.MASKS / f"{image_id}.png", mask_values(seed))
    if classes is not None:
        (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    return root


def failed_flags(row) -> set[str]:
    return {flag for flag in voc.FLAGS if not row[flag]} | ({"in_other_split"} if row["in_other_split"] else set())


# -- palette, masks, classes, splits ----------------------------------------------------------------

def test_palette_is_vocs_and_a_mask_keeps_its_ids(tmp_path):
    palette = voc.voc_palette()
    colour = {value: tuple(palette[3 * value:3 * value + 3]) for value in (0, 1, 2, 15, 20, 255)}
    assert colour == {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 15: (192, 128, 128), 20: (0, 64, 128),
                      255: (224, 224, 192)}
    path = write_mask(tmp_path / "m.png", mask_values(3))
    with Image.open(path) as image:
        assert image.mode == "P" and image.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    assert (voc.read_mask(path, 21) == mask_values(3)).all()


def test_classes_default_to_vocs_21_with_background_first(tmp_path):
    root = write_voc(tmp_path)
    assert voc.read_classes(root) == CLASSES and CLASSES[0] == "background" and len(CLASSES) == 21
    (root / "classes.txt").write_text("background\nface\n")
    assert voc.read_classes(root) == ["background", "face"]


@pytest.mark.parametrize("bad, message", [
    ("../x", "not a plain file name"), ("a/b", "not a plain file name"), ("a\\b", "not a plain file name"),
    ("..", "not a plain file name"), (".hidden", "not a plain file name"), ("a\x07b", "control character"),
    ("x" * 129, "longer than 128"), ("2007_000032 1", "per-class lists")])
def test_unsafe_ids_are_refused_naming_the_file_and_line(tmp_path, bad, message):
    root = write_voc(tmp_path)
    listing = root / voc.SPLIT_FOLDER / "train.txt"
    listing.write_text(f"img_0001\n{bad}\n")
    with pytest.raises(voc.MaskError, match=message) as refused:
        voc.read_split(root, "train")
    assert f"{listing} line 2" in str(refused.value)
    assert "SegmentationClass/<id>.png" in str(refused.value) or "not a plain" not in message


def test_a_grey_mask_is_read_as_class_ids(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(mask_values(4)).save(path)  # mode L
    assert (voc.read_mask(path, 21) == mask_values(4)).all()


# -- the manifest --------------------------------------------------------------------------------

def test_manifest_of_a_clean_folder_has_one_row_per_listed_image_and_every_flag_passing(tmp_path):
    write_voc(tmp_path / "segmentation")
    table = voc.manifest(tmp_path / "segmentation", CLASSES, relative_to=tmp_path)
    assert list(table.columns) == list(voc.COLUMNS) and len(table) == 6
    for column in voc.FLAGS:
        assert table[column].all(), column
    assert not table["in_other_split"].any() and (table["error"] == "").all()
    first = table.iloc[0]
    assert first["path"] == f"segmentation/{ROOT}/SegmentationClass/img_0001.png"
    assert first["image"] == f"segmentation/{ROOT}/JPEGImages/img_0001.jpg" and first["mask"] == first["path"]
    assert (first["split"], first["width"], first["height"], first["mask_width"], first["mask_mode"]) == (
        "train", 64, 48, 64, "P")
    assert first["class_pixels"] == f"0:{64 * 48 - 22 * 30} 1:{20 * 28} 255:{22 * 30 - 20 * 28}"
    assert first["ignore_share"] == pytest.approx((22 * 30 - 20 * 28) / (64 * 48))
    assert table["sha256"].str.len().eq(64).all() and table.groupby("split").size().to_dict() == {"train": 4, "val": 2}
    dtypes = {column: str(kind) for column, kind in table.dtypes.items()}
    assert dtypes["width"] == "int64" and dtypes["values_ok"] == "bool" and dtypes["ignore_share"] == "float64"


def test_an_empty_manifest_keeps_its_columns_and_types(tmp_path):
    write_voc(tmp_path, {"train": [], "val": []})
    table = voc.manifest(tmp_path, CLASSES)
    assert table.empty and list(table.columns) == list(voc.COLUMNS) and str(table["listed"].dtype) == "bool"


def _replace_mask(image_id: str, save):
    def damage(root: Path):
        path = root / voc.MASKS / f"{image_id}.png"
        path.unlink()
        save(path)
    return damage


def _link_mask(root: Path):
    (root / voc.MASKS / "img_0004.png").unlink()
    (root / voc.MASKS / "img_0004.png").symlink_to(root / voc.MASKS / "img_0001.png")


def _bad_values(root: Path):
    values = mask_values(1)
    values[0, :3] = (21, 37, 254)
    write_mask(root / voc.MASKS / "img_0002.png", values)


def _sixteen_bit(path: Path):
    Image.fromarray(mask_values(0).astype(np.uint16) * 256).save(path)  # I;16


FAULTS = {
    # name: (break the folder, the row's path under VOCdevkit/VOC2012/, the flag it fails, error text)
    "colour (RGB) mask": (_replace_mask("img_0002", lambda path: write_image(path, 9)),
                          "SegmentationClass/img_0002.png", "mask_mode_ok", "a PNG image of mode RGB, not a palette"),
    "JPEG mask named .png": (_replace_mask("img_0002", lambda path: Image.fromarray(mask_values(1)).save(
        path, format="JPEG")), "SegmentationClass/img_0002.png", "mask_mode_ok", "a JPEG image of mode L"),
    "16-bit mask": (_replace_mask("img_0003", _sixteen_bit), "SegmentationClass/img_0003.png", "mask_mode_ok",
                    "of mode I;16"),
    "mask size differs from its image": (
        lambda root: write_mask(root / voc.MASKS / "img_0005.png", mask_values(4, (64, 40))),
        "SegmentationClass/img_0005.png", "size_matches", "the mask is 64x40 but the image is 64x48"),
    "values outside the class ids and 255": (
        _bad_values, "SegmentationClass/img_0002.png", "values_ok",
        "holds the value(s) 21 37 254 (3 pixels), which are neither class ids (0-20) nor 255"),
    "listed image missing": (lambda root: (root / voc.IMAGES / "img_0003.jpg").unlink(),
                             "SegmentationClass/img_0003.png", "has_image",
                             "listed in ImageSets/Segmentation/train.txt but JPEGImages/img_0003.jpg is missing"),
    "image without mask": (lambda root: (root / voc.MASKS / "img_0005.png").unlink(), "JPEGImages/img_0005.jpg",
                           "has_mask", "listed in ImageSets/Segmentation/val.txt but SegmentationClass/img_0005.png "
                           "is missing"),
    "mask without listed image": (lambda root: write_mask(root / voc.MASKS / "stray.png", mask_values(0)),
                                  "SegmentationClass/stray.png", "listed",
                                  "SegmentationClass/stray.png is in no split (ImageSets/Segmentation/train.txt, "
                                  "val.txt)"),
    "image in no split": (lambda root: write_image(root / voc.IMAGES / "stray.jpg", 99), "JPEGImages/stray.jpg",
                          "listed", "JPEGImages/stray.jpg is in no split"),
    "id in both splits": (lambda root: (root / voc.SPLIT_FOLDER / "val.txt").write_text("img_0005\nimg_0001\n"),
                          "SegmentationClass/img_0001.png", "in_other_split",
                          "listed in both ImageSets/Segmentation/train.txt and val.txt"),
    "same image in both splits": (
        lambda root: (root / voc.IMAGES / "img_0006.jpg").write_bytes((root / voc.IMAGES / "img_0002.jpg")
                                                                      .read_bytes()),
        "SegmentationClass/img_0006.png", "in_other_split", "the same image bytes as JPEGImages/img_0002.jpg"),
    "image does not decode": (lambda root: (root / voc.IMAGES / "img_0006.jpg").write_bytes(b"\xff\xd8\xff" * 50),
                              "SegmentationClass/img_0006.png", "decodes", "JPEGImages/img_0006.jpg: "),
    "mask does not decode": (_replace_mask("img_0004", lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n" * 9)),
                             "SegmentationClass/img_0004.png", "mask_decodes", "SegmentationClass/img_0004.png: "),
    "mask is a link": (_link_mask, "SegmentationClass/img_0004.png", "mask_decodes", "is a symbolic link"),
    "unsafe id in a split list": (
        lambda root: (root / voc.SPLIT_FOLDER / "val.txt").write_text("img_0005\nimg_0006\n../x\n"),
        "ImageSets/Segmentation/val.txt", "listed", "line 3: the image id '../x' is not a plain file name"),
    "split list missing": (lambda root: (root / voc.SPLIT_FOLDER / "val.txt").unlink(),
                           "ImageSets/Segmentation/val.txt", "listed", "is missing"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_manifest_flags_each_fault_once_on_the_row_that_has_it(tmp_path, fault):
    root = write_voc(tmp_path)
    damage, path, flag, text = FAULTS[fault]
    damage(root)
    table = voc.manifest(tmp_path, CLASSES)
    rows = table[table["path"] == f"{ROOT}/{path}"]
    assert len(rows), f"no row named {path}: {table['path'].tolist()}"
    row = rows.iloc[0]
    assert failed_flags(row) == {flag}, row.to_dict()  # one problem, one flag
    assert text in row["error"], row["error"]
    # No other row fails: an id in both splits is a row in each (and one moved to val.txt leaves
    # img_0006 in no split); a missing val.txt leaves the val files in no split.
    if fault not in ("id in both splits", "same image in both splits", "split list missing"):
        others = table[table["path"] != row["path"]]
        assert not others.apply(failed_flags, axis=1).map(bool).any(), others[others["error"] != ""].to_dict("records")


def test_classes_txt_decides_which_values_are_class_ids(tmp_path):
    root = write_voc(tmp_path, classes=["background", "cat"])  # masks use ids 1-6
    table = voc.manifest(tmp_path, voc.read_classes(root))
    assert table["values_ok"].tolist() == [True, False, False, False, False, False]
    assert table["bad_values"].tolist()[1:3] == ["2", "3"] and "nor 255" in table["error"].iloc[1]


def test_the_suite_passes_a_clean_folder_and_names_every_bad_file(tmp_path):
    from zooflow.validation.runner import validate

    write_voc(tmp_path / "clean")
    clean = validate(voc.manifest(tmp_path / "clean", CLASSES), voc.expectations(CLASSES), "clean")
    assert clean.success, clean.failures
    assert clean.expectations == len(voc.FLAGS) + 2

    # Every flag failing at once, each on a file of its own (ids 7-9 for the last three).
    chosen = ["values outside the class ids and 255", "16-bit mask", "mask does not decode", "image without mask",
              "same image in both splits", "mask without listed image"]
    more = {  # name: (damage, the row's path, the flag)
        "mask size differs": (lambda root: write_mask(root / voc.MASKS / "img_0007.png", mask_values(6, (60, 48))),
                              "SegmentationClass/img_0007.png", "size_matches"),
        "listed image missing": (lambda root: (root / voc.IMAGES / "img_0008.jpg").unlink(),
                                 "SegmentationClass/img_0008.png", "has_image"),
        "image does not decode": (lambda root: (root / voc.IMAGES / "img_0009.jpg").write_bytes(b"GIF89a"),
                                  "SegmentationClass/img_0009.png", "decodes"),
    }
    root = write_voc(tmp_path / "broken", {"train": DEFAULT_SPLITS["train"] + ["img_0007", "img_0008"],
                                           "val": DEFAULT_SPLITS["val"] + ["img_0009"]})
    expected = [(FAULTS[fault][1], FAULTS[fault][2]) for fault in chosen] + [(path, flag) for _, path, flag in
                                                                              more.values()]
    for damage in [FAULTS[fault][0] for fault in chosen] + [damage for damage, _, _ in more.values()]:
        damage(root)
    report = validate(voc.manifest(tmp_path / "broken", CLASSES), voc.expectations(CLASSES), "broken")
    assert not report.success
    for path, flag in expected:
        assert any(line.startswith(f"expect_column_values_to_be_in_set({flag}): {ROOT}/{path}: ")
                   for line in report.failures), (path, flag, report.failures)
    assert len(report.failures) == len(expected) + 1  # the same image bytes: img_0002's row and img_0006's


# -- the dataset ------------------------------------------------------------------------------------

def test_dataset_returns_tv_tensors_and_keeps_255(tmp_path):
    from torchvision import tv_tensors

    write_voc(tmp_path)
    train = voc.VOCSegmentation(tmp_path, "train", CLASSES)
    assert len(train) == 4 and train.image_ids[0] == "img_0001"
    image, mask = train[1]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64 and mask.shape == (48, 64)
    assert (mask.numpy() == mask_values(1)).all() and set(mask.unique().tolist()) == {0, 2, 255}


def test_dataset_applies_a_v2_transform_to_image_and_mask(tmp_path):
    from torchvision.transforms import v2

    write_voc(tmp_path)
    flipped = voc.VOCSegmentation(tmp_path, "val", CLASSES, transform=v2.RandomHorizontalFlip(p=1.0))
    image, mask = flipped[0]
    assert image.shape == (3, 48, 64) and (mask.numpy() == mask_values(4)[:, ::-1]).all()
    resized = voc.VOCSegmentation(tmp_path, "val", CLASSES, transform=v2.Resize((24, 32)))
    _, small = resized[0]
    assert small.shape == (24, 32) and set(small.unique().tolist()) <= {0, 5, 255}  # nearest: no blended ids


def test_dataset_names_a_bad_mask(tmp_path):
    root = write_voc(tmp_path)
    _bad_values(root)
    write_mask(root / voc.MASKS / "img_0003.png", mask_values(2, (32, 48)))
    train = voc.VOCSegmentation(tmp_path, "train", CLASSES)
    with pytest.raises(voc.MaskError, match=r"img_0002.png: holds the value\(s\) 21 37 254"):
        train[1]
    with pytest.raises(voc.MaskError, match=r"img_0003.png: the mask is 32x48 but the image is 64x48"):
        train[2]


# -- the importer ------------------------------------------------------------------------------------

def download(folder: Path) -> Path:
    """A VOCdevkit as a real VOC2012 download holds it (detection parts, object masks, more
    images than the segmentation lists use, a Mac's litter); the VOC folder."""
    root = write_voc(folder)
    (root.parent / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / voc.SPLIT_FOLDER / "trainval.txt").write_text("".join(f"img_000{n}\n" for n in range(1, 7)))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("img_0001\n2008_000001\n")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "img_0001.xml").write_text("<annotation/>")
    write_mask(root / "SegmentationObject" / "img_0001.png", mask_values(0))
    write_image(root / voc.IMAGES / "2008_000001.jpg", 60)
    write_mask(root / voc.MASKS / "2008_000002.png", mask_values(1))
    return root


def test_import_copies_only_the_listed_segmentation_data_and_says_what_it_left_out(tmp_path):
    root = download(tmp_path / "source")
    target = tmp_path / "data" / "segmentation"
    imported = import_voc_segmentation(root.parent, target)

    listed = [f"img_000{n}" for n in range(1, 7)]
    expected = ({f"JPEGImages/{image_id}.jpg" for image_id in listed}
                | {f"SegmentationClass/{image_id}.png" for image_id in listed}
                | {"ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt", "classes.txt"})
    assert files_under(target) == {f"{ROOT}/{name}" for name in expected}
    for name in expected - {"classes.txt"}:
        assert (target / ROOT / name).read_bytes() == (root / name).read_bytes(), name
    assert imported.classes == voc.SEGMENTATION_CLASSES and imported.skipped == (".DS_Store",)
    notes = "\n".join(imported.notes)
    assert "Annotations/, SegmentationObject/, ImageSets/Main/ (not used by segmentation)" in notes
    assert "left out 1 image in JPEGImages/ listed in no segmentation split (2008_000001.jpg)" in notes
    assert "left out 1 mask in SegmentationClass/ listed in no segmentation split (2008_000002.png)" in notes
    assert "trainval.txt in ImageSets/Segmentation" in notes
    table = voc.manifest(target, list(imported.classes))
    assert len(table) == 6 and all(table[flag].all() for flag in voc.FLAGS)


@pytest.mark.parametrize("where", ["voc folder", "download folder"])
def test_import_accepts_the_voc_folder_itself_or_the_folder_a_download_extracts_to(tmp_path, where):
    root = write_voc(tmp_path / "VOCtrainval_11-May-2012", classes=CLASSES[:7])
    source = root if where == "voc folder" else tmp_path / "VOCtrainval_11-May-2012"
    assert import_voc_segmentation(source, tmp_path / "target").classes == tuple(CLASSES[:7])
    assert voc.voc_root(tmp_path / "target").name == "VOC2012"


@pytest.mark.parametrize("link_at", ["SegmentationClass/img_0001.png", "JPEGImages/img_0002.jpg", "Annotations"])
def test_a_symlink_anywhere_is_refused_by_name_and_nothing_is_written_outside_the_target(tmp_path, link_at):
    root = download(tmp_path / "source")
    link = root / link_at
    if link.is_dir():
        os.rename(link, tmp_path / "moved")
    else:
        link.unlink()
    link.symlink_to("/etc/passwd")
    before = files_under(tmp_path)
    with pytest.raises(ImportRejected, match="symbolic link") as refused:
        import_voc_segmentation(root.parent, tmp_path / "out" / "segmentation")
    assert str(link) in str(refused.value)
    assert {name for name in files_under(tmp_path) - before if not name.startswith("out/segmentation/")} == set()
    assert not any("passwd" in name for name in files_under(tmp_path / "out"))


def test_import_refusals_name_what_is_wrong(tmp_path):
    root = write_voc(tmp_path / "a")
    (root / voc.SPLIT_FOLDER / "train.txt").write_text("img_0001\n../../etc/passwd\n")
    with pytest.raises(InputRejected, match=r"train.txt line 2: the image id '../../etc/passwd' is not a plain"):
        import_voc_segmentation(root.parent, tmp_path / "t")

    root = write_voc(tmp_path / "b")
    (root / voc.SPLIT_FOLDER / "val.txt").unlink()
    with pytest.raises(ImportRejected, match=r"ImageSets/Segmentation/val.txt: is missing; the segmentation splits"):
        import_voc_segmentation(root.parent, tmp_path / "t")

    root = write_voc(tmp_path / "c")
    os.rename(root / voc.MASKS, tmp_path / "masks")
    with pytest.raises(ImportRejected, match=r"has no SegmentationClass/ folder.* their class masks in"):
        import_voc_segmentation(root.parent, tmp_path / "t")
