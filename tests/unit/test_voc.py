"""Reading the Pascal VOC detection layout: annotations (and the XML attacks they may carry), the
split lists, the class set, the manifest's flags for every fault, and the dataset the model
trains on. Every case is a small real VOC folder written under tmp_path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zooflow.errors import InputRejected
from zooflow.tasks.detection import voc

SIZE = (64, 48)  # width, height of every generated image
DEFAULT_SPLITS = {"train": ["img_0001", "img_0002", "img_0003", "img_0004"], "val": ["img_0005", "img_0006"]}
DEFAULT_OBJECTS = [{"name": "cat", "box": (5, 6, 30, 40)}, {"name": "dog", "box": (20, 3, 64, 48), "difficult": 1}]


def write_image(path: Path, seed: int, size: tuple[int, int] = SIZE) -> Path:
    """A random (so distinct) RGB image of ``size``, in the format its suffix names."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def annotation_xml(filename: str, size: tuple[int, int] = SIZE, objects: list[dict] = DEFAULT_OBJECTS) -> str:
    """A VOC annotation as the VOC tools write it; an object's ``difficult``/``truncated`` is
    left out of the XML when the dict does not give it."""
    parts = [f"<annotation><folder>VOC2012</folder><filename>{filename}</filename>",
             f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"]
    for item in objects:
        flags = "".join(f"<{tag}>{item[tag]}</{tag}>" for tag in ("difficult", "truncated") if tag in item)
        corners = "".join(f"<{tag}>{value}</{tag}>" for tag, value in zip(voc.BOX_TAGS, item["box"]))
        parts.append(f"<object><name>{item['name']}</name><pose>Unspecified</pose>{flags}"
                     f"<bndbox>{corners}</bndbox></object>")
    return "\n".join(parts + ["</annotation>\n"])


def write_voc(folder: Path, splits: dict[str, list[str]] | None = None, year: str = "VOC2012",
              classes: list[str] | None = None) -> Path:
    """A small valid VOC folder ``folder/VOCdevkit/<year>/``: every listed id has a distinct
    64x48 JPEG and an annotation with a cat and a difficult dog; the VOC folder is returned."""
    splits = splits or DEFAULT_SPLITS
    root = folder / voc.DEVKIT / year
    for split, ids in splits.items():
        (root / voc.SPLIT_FOLDER).mkdir(parents=True, exist_ok=True)
        (root / voc.SPLIT_FOLDER / f"{split}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
    for seed, image_id in enumerate(dict.fromkeys(sum(splits.values(), []))):
        write_image(root / voc.IMAGES / f"{image_id}.jpg", seed)
        write_annotation(root, image_id)
    if classes is not None:
        (root / voc.CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes))
    return root


def write_annotation(root: Path, image_id: str, objects: list[dict] = DEFAULT_OBJECTS,
                     size: tuple[int, int] = SIZE, filename: str | None = None) -> Path:
    path = root / voc.ANNOTATIONS / f"{image_id}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(annotation_xml(filename or f"{image_id}.jpg", size, objects))
    return path


def rows_of(table, path: str):
    """The manifest rows named ``path`` (relative to the task folder)."""
    return table[table["path"] == path]


# -- annotations ---------------------------------------------------------------------------------

def test_parse_a_normal_annotation(tmp_path):
    root = write_voc(tmp_path)
    annotation = voc.parse_annotation(root / voc.ANNOTATIONS / "img_0001.xml")
    assert annotation.filename == "img_0001.jpg" and (annotation.width, annotation.height) == SIZE
    cat, dog = annotation.objects
    assert cat == voc.VOCObject("cat", 5, 6, 30, 40, difficult=False, truncated=False)
    assert cat.box() == (4, 5, 30, 40)  # 1-based inclusive pixels -> continuous 0-based
    assert dog.difficult and dog.box() == (19, 2, 64, 48)


def test_parse_floats_flags_and_padded_names(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(annotation_xml("a.jpg", objects=[
        {"name": "  person\n", "box": ("273.5", "1", "300.25", "47.0"), "difficult": 0, "truncated": 1}]))
    (item,) = voc.parse_annotation(path).objects
    assert item.label == "person" and (item.xmin, item.xmax, item.ymax) == (273.5, 300.25, 47.0)
    assert item.truncated and not item.difficult


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height></size>
<object><name>&lol9;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>
</annotation>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height></size>
<object><name>&x;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>
</annotation>"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_xml_with_entities_is_refused_unexpanded(tmp_path, text):
    path = tmp_path / "evil.xml"
    path.write_text(text)
    with pytest.raises(voc.AnnotationError, match="DTD") as refused:
        voc.parse_annotation(path)
    message = str(refused.value)
    assert str(path) in message and "refused" in message
    assert "root:" not in message and "lollol" not in message  # nothing was expanded or read


@pytest.mark.parametrize("filename", ["../../x.jpg", "/etc/x.jpg", "sub/x.jpg", "..\\x.jpg", ".."])
def test_a_filename_outside_jpegimages_is_refused(tmp_path, filename):
    path = tmp_path / "a.xml"
    path.write_text(annotation_xml(filename))
    with pytest.raises(voc.AnnotationError, match="not a plain file name") as refused:
        voc.parse_annotation(path)
    assert str(path) in str(refused.value)


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("<xmin>20</xmin>", "<xmin>left</xmin>"), r"object 2: <xmin> 'left' is not a number"),
    (lambda text: text.replace("<ymax>40</ymax>", "<ymax>nan</ymax>"), r"object 1: <ymax> 'nan' is not a finite"),
    (lambda text: text.replace("<name>dog</name>", ""), r"object 2: <name> is missing"),
    (lambda text: text.replace("<difficult>1</difficult>", "<difficult>yes</difficult>"),
     r"object 2: <difficult> 'yes' is not 0 or 1"),
    (lambda text: text.replace("<width>64</width>", ""), r"<size>: <width> is missing"),
    (lambda text: text.replace("<filename>a.jpg</filename>", ""), r"<filename> is missing"),
    (lambda text: text.replace("</annotation>", ""), r"the XML does not parse"),
    (lambda text: text.replace("annotation>", "notes>"), r"root element is <notes>"),
])
def test_bad_annotations_name_the_file_object_and_tag(tmp_path, edit, message):
    path = tmp_path / "a.xml"
    path.write_text(edit(annotation_xml("a.jpg")))
    with pytest.raises(voc.AnnotationError, match=message) as refused:
        voc.parse_annotation(path)
    assert str(refused.value).startswith(f"{path}: ")


def test_an_annotation_that_is_a_link_is_refused(tmp_path):
    real = tmp_path / "real.xml"
    real.write_text(annotation_xml("a.jpg"))
    (tmp_path / "a.xml").symlink_to(real)
    with pytest.raises(voc.AnnotationError, match="symbolic link"):
        voc.parse_annotation(tmp_path / "a.xml")


# -- the folder, classes, splits -----------------------------------------------------------------

def test_classes_default_to_voc_and_come_from_classes_txt(tmp_path):
    root = write_voc(tmp_path)
    assert voc.read_classes(root) == list(voc.VOC_CLASSES) and len(voc.VOC_CLASSES) == 20
    (root / voc.CLASSES_FILE).write_text("\ufeffdog\n\ncat\n")
    assert voc.read_classes(root) == ["dog", "cat"]


@pytest.mark.parametrize("text, message", [
    ("cat\ndog\ncat\n", r"line 3: the class 'cat' is declared twice \(first on line 1\)"),
    ("cat\n../dog\n", r"line 2: the class name '../dog' is not allowed"),
    ("\n\n", "declares no class"),
])
def test_bad_classes_txt_names_the_line(tmp_path, text, message):
    root = write_voc(tmp_path)
    (root / voc.CLASSES_FILE).write_text(text)
    with pytest.raises(InputRejected, match=message) as refused:
        voc.read_classes(root)
    assert "classes.txt" in str(refused.value)


def test_read_split_ignores_blank_lines_and_refuses_unsafe_ids(tmp_path):
    root = write_voc(tmp_path)
    listing = root / voc.SPLIT_FOLDER / "train.txt"
    listing.write_text("a\r\n\n  b  \n")
    assert voc.read_split(root, "train") == ["a", "b"]
    for bad, message in [("../x", "not a plain file name"), (".hidden", "not a plain file name"),
                         ("a\\b", "not a plain file name"), ("x" * 129, "longer than 128"),
                         ("a\x07b", "control character"), ("2008_000008 -1", "per-class lists")]:
        listing.write_text(f"ok\n{bad}\n")
        with pytest.raises(voc.AnnotationError, match=message) as refused:
            voc.read_split(root, "train")
        assert f"{listing} line 2" in str(refused.value)
    listing.write_text("a\nb\na\n")
    with pytest.raises(voc.AnnotationError, match=r"line 3: the id 'a' is listed twice \(first on line 1\)"):
        voc.read_split(root, "train")


def test_voc_root_is_the_one_voc_folder(tmp_path):
    root = write_voc(tmp_path)
    assert voc.voc_root(tmp_path) == root
    with pytest.raises(InputRejected, match="no VOCdevkit/ folder"):
        voc.voc_root(tmp_path / voc.DEVKIT)
    (tmp_path / voc.DEVKIT / "VOC2007").mkdir()
    with pytest.raises(InputRejected, match=r"2 VOC folders \(VOC2007, VOC2012\)"):
        voc.voc_root(tmp_path)


# -- the manifest --------------------------------------------------------------------------------

def test_manifest_of_a_clean_folder_has_one_row_per_object_and_every_flag_passing(tmp_path):
    write_voc(tmp_path / "detection")
    table = voc.manifest(tmp_path / "detection", list(voc.VOC_CLASSES), relative_to=tmp_path)
    assert list(table.columns) == list(voc.COLUMNS) and len(table) == 12
    for column in voc.FLAGS:
        assert table[column].all(), column
    assert not table["train_without_objects"].any() and not table["in_other_split"].any()
    assert (table["error"] == "").all() and table["sha256"].str.len().eq(64).all()
    first = table.iloc[0]
    assert first["path"] == "detection/VOCdevkit/VOC2012/Annotations/img_0001.xml#object1"
    assert first["image"] == "detection/VOCdevkit/VOC2012/JPEGImages/img_0001.jpg"
    assert (first["label"], first["xmin"], first["ymax"], first["split"]) == ("cat", 5.0, 40.0, "train")
    assert (first["width"], first["height"], first["xml_width"], first["objects"]) == (64, 48, 64, 2)
    assert table["difficult"].tolist() == [False, True] * 6
    assert table.groupby("split")["image_id"].nunique().to_dict() == {"train": 4, "val": 2}
    dtypes = {column: str(kind) for column, kind in table.dtypes.items()}
    assert dtypes["xmin"] == "float64" and dtypes["width"] == "int64" and dtypes["box_ok"] == "bool"


def test_an_empty_manifest_keeps_its_columns_and_types(tmp_path):
    write_voc(tmp_path, {"train": [], "val": []})
    table = voc.manifest(tmp_path, list(voc.VOC_CLASSES))
    assert table.empty and list(table.columns) == list(voc.COLUMNS)
    assert str(table["objects"].dtype) == "int64" and str(table["listed"].dtype) == "bool"


def _box(root, xmin, ymin, xmax, ymax):
    write_annotation(root, "img_0002", [{"name": "cat", "box": (5, 6, 30, 40)},
                                        {"name": "cat", "box": (xmin, ymin, xmax, ymax)}])


FAULTS = {
    # name: (break the folder, the row's path under VOCdevkit/VOC2012/, column, bad value, error text)
    "box outside the image": (lambda root: _box(root, 5, 3, 400, 80), "Annotations/img_0002.xml#object2",
                              "box_ok", False, "box (5, 3, 400, 80) leaves the 64x48 image"),
    "xmin >= xmax": (lambda root: _box(root, 50, 3, 10, 20), "Annotations/img_0002.xml#object2",
                     "box_ok", False, "xmin 50 >= xmax 10"),
    "box at pixel 0": (lambda root: _box(root, 0, 3, 10, 20), "Annotations/img_0002.xml#object2",
                       "box_ok", False, "leaves the 64x48 image"),
    "unknown class": (lambda root: write_annotation(root, "img_0003", [{"name": "dgo", "box": (1, 1, 9, 9)}]),
                      "Annotations/img_0003.xml#object1", "label_known", False,
                      "class 'dgo' is not in the 20 VOC classes"),
    "xml size mismatch": (lambda root: write_annotation(root, "img_0001", size=(500, 375)),
                          "Annotations/img_0001.xml#object1", "size_matches", False,
                          "the XML says 500x375 but the image is 64x48"),
    "train image without objects": (lambda root: write_annotation(root, "img_0004", []),
                                    "Annotations/img_0004.xml", "train_without_objects", True,
                                    "a train image without any object"),
    "id in both splits": (lambda root: (root / voc.SPLIT_FOLDER / "val.txt").write_text("img_0005\nimg_0001\n"),
                          "Annotations/img_0001.xml#object1", "in_other_split", True,
                          "listed in both ImageSets/Main/train.txt and val.txt"),
    "same image in both splits": (
        lambda root: (root / voc.IMAGES / "img_0006.jpg").write_bytes((root / voc.IMAGES / "img_0002.jpg")
                                                                      .read_bytes()),
        "Annotations/img_0006.xml#object1", "in_other_split", True, "the same image bytes as JPEGImages/img_0002.jpg"),
    "listed image missing": (lambda root: (root / voc.IMAGES / "img_0003.jpg").unlink(),
                             "Annotations/img_0003.xml", "has_image", False,
                             "listed in ImageSets/Main/train.txt but JPEGImages/img_0003.jpg is missing"),
    "listed annotation missing": (lambda root: (root / voc.ANNOTATIONS / "img_0005.xml").unlink(),
                                  "JPEGImages/img_0005.jpg", "has_annotation", False,
                                  "listed in ImageSets/Main/val.txt but Annotations/img_0005.xml is missing"),
    "image in no split": (lambda root: write_image(root / voc.IMAGES / "stray.jpg", 99), "JPEGImages/stray.jpg",
                          "listed", False, "JPEGImages/stray.jpg is in no split (ImageSets/Main/train.txt, val.txt)"),
    "annotation in no split": (lambda root: write_annotation(root, "stray"), "Annotations/stray.xml",
                               "listed", False, "Annotations/stray.xml is in no split"),
    "xml does not parse": (lambda root: (root / voc.ANNOTATIONS / "img_0002.xml").write_text("<annotation><size>"),
                           "Annotations/img_0002.xml", "xml_ok", False, "the XML does not parse"),
    "xml declares entities": (lambda root: (root / voc.ANNOTATIONS / "img_0002.xml").write_text(EXTERNAL_ENTITY),
                              "Annotations/img_0002.xml", "xml_ok", False, "DTDs and entities are refused"),
    "box is not a number": (lambda root: write_annotation(root, "img_0002", [{"name": "cat", "box": (1, 1, 9, 9)},
                                                                           {"name": "cat", "box": (1, "x", 9, 9)}]),
                            "Annotations/img_0002.xml", "xml_ok", False, "object 2: <ymin> 'x' is not a number"),
    "image does not decode": (lambda root: (root / voc.IMAGES / "img_0006.jpg").write_bytes(b"\xff\xd8\xff" * 50),
                              "Annotations/img_0006.xml#object1", "decodes", False, "JPEGImages/img_0006.jpg: "),
    "unsafe id in a split list": (lambda root: (root / voc.SPLIT_FOLDER / "val.txt").write_text("img_0005\n../x\n"),
                                  "ImageSets/Main/val.txt", "listed", False, "line 2: the image id '../x'"),
    "split list missing": (lambda root: (root / voc.SPLIT_FOLDER / "val.txt").unlink(), "ImageSets/Main/val.txt",
                           "listed", False, "is missing"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_manifest_flags_each_fault_on_the_row_that_has_it(tmp_path, fault):
    root = write_voc(tmp_path)
    damage, path, column, value, text = FAULTS[fault]
    damage(root)
    table = voc.manifest(tmp_path, list(voc.VOC_CLASSES))
    rows = rows_of(table, f"VOCdevkit/VOC2012/{path}")
    assert len(rows), f"no row named {path}: {table['path'].tolist()}"
    row = rows.iloc[0]
    assert row[column] == value, row.to_dict()
    assert text in row["error"], row["error"]
    # Every other row of the folder is clean of this fault (one problem, one flag, one row set).
    others = table[table["path"] != rows.iloc[0]["path"]]
    if column in ("box_ok", "label_known"):
        assert (others[column] != value).all()


def test_box_checks_use_the_xml_size_when_the_image_does_not_decode(tmp_path):
    root = write_voc(tmp_path)
    write_annotation(root, "img_0006", [{"name": "cat", "box": (1, 1, 90, 9)}], size=(100, 50))
    (root / voc.IMAGES / "img_0006.jpg").write_bytes(b"not an image")
    row = rows_of(voc.manifest(tmp_path, list(voc.VOC_CLASSES)), "VOCdevkit/VOC2012/Annotations/img_0006.xml#object1")
    assert not row["decodes"].iloc[0] and row["box_ok"].iloc[0] and row["size_matches"].iloc[0]
    assert row["width"].iloc[0] == 0 and row["xml_width"].iloc[0] == 100


def test_classes_txt_decides_which_labels_are_known(tmp_path):
    root = write_voc(tmp_path, classes=["cat"])
    table = voc.manifest(tmp_path, voc.read_classes(root))
    dogs = table[table["label"] == "dog"]
    assert len(dogs) == 6 and not dogs["label_known"].any()
    assert dogs["error"].str.contains("class 'dog' is not in classes.txt").all()
    assert table.loc[table["label"] == "cat", "label_known"].all()


def test_a_png_image_named_by_the_xml_is_used(tmp_path):
    root = write_voc(tmp_path)
    (root / voc.IMAGES / "img_0005.jpg").unlink()
    write_image(root / voc.IMAGES / "img_0005.png", 7)
    write_annotation(root, "img_0005", filename="img_0005.png")
    table = voc.manifest(tmp_path, list(voc.VOC_CLASSES))
    assert table["listed"].all() and table["has_image"].all()
    assert "VOCdevkit/VOC2012/JPEGImages/img_0005.png" in set(table["image"])


# -- the dataset -----------------------------------------------------------------------------------

def test_dataset_returns_tv_tensors_and_leaves_difficult_out(tmp_path):
    from torchvision import tv_tensors

    write_voc(tmp_path)
    classes = list(voc.VOC_CLASSES)
    train = voc.VOCDetection(tmp_path, "train", classes)
    assert len(train) == 4 and train.image_ids[0] == "img_0001"
    image, target = train[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.canvas_size == (48, 64)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and boxes.dtype == torch.float32
    assert boxes.tolist() == [[4.0, 5.0, 30.0, 40.0]]  # the difficult dog is left out
    assert target["labels"].tolist() == [classes.index("cat")] and target["labels"].dtype == torch.int64
    assert target["difficult"].tolist() == [False]
    assert train.image_size(0) == (48, 64) and train.image_path(0).name == "img_0001.jpg"
    assert train.annotation(0).objects[1].label == "dog"

    kept = voc.VOCDetection(tmp_path, "val", classes, keep_difficult=True)
    _, target = kept[1]
    assert target["labels"].tolist() == [classes.index("cat"), classes.index("dog")]
    assert target["difficult"].tolist() == [False, True] and target["boxes"].tolist()[1] == [19.0, 2.0, 64.0, 48.0]


def test_dataset_applies_a_v2_transform_to_image_and_boxes(tmp_path):
    from torchvision.transforms import v2

    write_voc(tmp_path)
    flipped = voc.VOCDetection(tmp_path, "train", list(voc.VOC_CLASSES), transform=v2.RandomHorizontalFlip(p=1.0))
    image, target = flipped[0]
    assert image.shape == (3, 48, 64)
    assert target["boxes"].tolist() == [[34.0, 5.0, 60.0, 40.0]]  # mirrored in the 64-pixel-wide image


def test_dataset_names_an_unknown_class(tmp_path):
    root = write_voc(tmp_path)
    write_annotation(root, "img_0001", [{"name": "dgo", "box": (1, 1, 9, 9)}])
    with pytest.raises(voc.AnnotationError, match=r"img_0001.xml: object 1: class 'dgo'"):
        voc.VOCDetection(tmp_path, "train", list(voc.VOC_CLASSES))[0]


def test_torchvision_reads_the_same_layout(tmp_path):
    """The layout is the real one: torchvision's own VOC reader finds the same images and boxes."""
    from torchvision.datasets import VOCDetection as TorchvisionVOC

    write_voc(tmp_path)
    theirs = TorchvisionVOC(str(tmp_path), year="2012", image_set="train", download=False)
    ours = voc.VOCDetection(tmp_path, "train", list(voc.VOC_CLASSES), keep_difficult=True)
    assert len(theirs) == len(ours) == 4
    image, target = theirs[2]
    assert image.size == SIZE
    objects = target["annotation"]["object"]
    assert [item["name"] for item in objects] == [item.label for item in ours.annotation(2).objects]
    assert [float(objects[0]["bndbox"][tag]) for tag in voc.BOX_TAGS] == [5, 6, 30, 40]
    assert math.isclose(ours[2][1]["boxes"][0, 0].item(), 4.0)
