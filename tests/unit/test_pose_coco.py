"""Reading the COCO keypoints layout of chapter 4: the manifest's flag for every fault on the row
that has it, the Great Expectations suite, the dataset the model trains on (keypoints, boxes, the
ignore mask of crowds), pycocotools on the same files, and the importer that brings a COCO 2017
download in. Every case is a small real COCO keypoints folder written under tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import files_under
from zooflow.data.safety import ImportRejected
from zooflow.errors import InputRejected
from zooflow.tasks.pose import coco
from zooflow.tasks.pose.importer import import_coco_keypoints
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

WIDTH, HEIGHT = 64, 48
CATEGORY = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
            "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                         [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]}
TRAIN_JSON = "annotations/person_keypoints_train.json"
VAL_JSON = "annotations/person_keypoints_val.json"
CROWD = (20, 30, 10, 10)  # top, left, height, width: rows 20-29, columns 30-39 of train image 2: the crowd's region
POLYGON = [2.0, 2.0, 12.0, 2.0, 12.0, 10.0, 2.0, 10.0]  # val image 12's unlabelled person


def keypoints(x0: int, y0: int, hidden: int = 2) -> list[int]:
    """A person's 51 numbers inside the image: keypoint k at (x0 + k, y0 + k), the first ``hidden``
    unlabelled, the next hidden (v=1), the rest visible."""
    values = []
    for k in range(len(COCO_KEYPOINTS)):
        v = 0 if k < hidden else 1 if k == hidden else 2
        values += [x0 + k, y0 + k, v] if v else [0, 0, 0]
    return values


def person(annotation_id: int, image_id: int, x0: int, y0: int, hidden: int = 2) -> dict:
    points = keypoints(x0, y0, hidden)
    return {"id": annotation_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "keypoints": points,
            "num_keypoints": sum(1 for v in points[2::3] if v), "bbox": [x0, y0, 17.0, 17.0], "area": 200.0,
            "segmentation": [[x0, y0, x0 + 16, y0, x0 + 16, y0 + 16]]}


def crowd_rle() -> dict:
    from pycocotools import mask as coco_mask

    region = np.zeros((HEIGHT, WIDTH), dtype=np.uint8, order="F")
    top, left, height, width = CROWD
    region[top:top + height, left:left + width] = 1
    rle = coco_mask.encode(region)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def dataset(split: str) -> dict:
    """The JSON of one split: train has images 1-3 (two people; one person and a crowd; nobody),
    val images 11-12 (one person; a person with no labelled keypoint and one with some)."""
    if split == "train":
        images = [(1, "a.jpg"), (2, "b.jpg"), (3, "c.jpg")]
        annotations = [person(1, 1, 2, 2), person(2, 1, 30, 20, hidden=0), person(3, 2, 5, 5)]
        annotations.append({"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 51,
                            "num_keypoints": 0, "bbox": [CROWD[1], CROWD[0], CROWD[3], CROWD[2]], "area": 400.0,
                            "segmentation": crowd_rle()})
    else:
        images = [(11, "d.jpg"), (12, "e.jpg")]
        unlabelled = {**person(12, 12, 2, 2), "keypoints": [0] * 51, "num_keypoints": 0, "segmentation": [POLYGON],
                      "bbox": [2.0, 2.0, 10.0, 8.0]}
        annotations = [person(11, 11, 10, 10), unlabelled, person(13, 12, 40, 25, hidden=5)]
    return {"info": {"description": "test"}, "licenses": [],
            "images": [{"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT}
                       for image_id, name in images],
            "annotations": annotations, "categories": [CATEGORY]}


def write_image(path: Path, seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def write_coco(folder: Path, suffix: str = "") -> Path:
    """A small valid COCO keypoints folder (the task's naming, or COCO 2017's with ``suffix="2017"``)."""
    for seed, split in enumerate(coco.SPLITS):
        data = dataset(split)
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        (folder / "annotations" / f"person_keypoints_{split}{suffix}.json").write_text(json.dumps(data))
        for number, image in enumerate(data["images"]):
            write_image(folder / f"{split}{suffix}" / image["file_name"], 10 * seed + number)
    return folder


def edit(split: str, change):
    """A damage that rewrites one split's JSON after ``change(data)``."""
    def damage(folder: Path):
        path = folder / "annotations" / f"person_keypoints_{split}.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return damage


def failed_flags(row) -> set[str]:
    return {flag for flag in coco.FLAGS if not row[flag]}


# -- reading ----------------------------------------------------------------------------------------

def test_read_split_returns_the_dict_and_pycocotools_indexes_it(tmp_path):
    from pycocotools.coco import COCO

    write_coco(tmp_path)
    data = coco.read_split(tmp_path, "train")
    assert [image["id"] for image in data["images"]] == [1, 2, 3] and len(data["annotations"]) == 4
    index = coco.coco_index(data)
    assert sorted(index.anns) == [1, 2, 3, 4] and index.getAnnIds(imgIds=[2]) == [3, 4]
    loaded = COCO(str(tmp_path / VAL_JSON))  # the official loader reads the same files
    assert loaded.getCatIds(catNms=["person"]) == [1] and len(loaded.getAnnIds(imgIds=[12], iscrowd=None)) == 2
    assert loaded.annToMask(loaded.anns[12]).sum() > 0


@pytest.mark.parametrize("content, message", [
    ("{", "is not valid JSON"), ("[1, 2]", "holds a JSON list"), ('{"images": [], "annotations": []}',
                                                                 "has no 'categories' list"),
    ('{"images": [], "annotations": [], "categories": [], "x": NaN}', "NaN is not a JSON number"),
    (b"\xff\xfe\x00", "not")])
def test_an_unreadable_json_is_an_error_naming_the_file(tmp_path, content, message):
    write_coco(tmp_path)
    path = tmp_path / TRAIN_JSON
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(coco.CocoError, match=message) as refused:
        coco.read_split(tmp_path, "train")
    assert str(path) in str(refused.value)
    with pytest.raises(coco.CocoError, match="over the 10 byte limit"):
        coco.read_json(tmp_path / VAL_JSON, max_bytes=10)


# -- the manifest -----------------------------------------------------------------------------------

def test_a_clean_folder_has_a_row_per_file_image_and_person_and_every_flag_passing(tmp_path):
    write_coco(tmp_path / "pose")
    table = coco.manifest(tmp_path / "pose", relative_to=tmp_path)
    assert list(table.columns) == list(coco.COLUMNS)
    assert table["kind"].value_counts().to_dict() == {"person": 7, "image": 5, "annotations": 2}
    for flag in coco.FLAGS:
        assert table[flag].all(), (flag, table[~table[flag]]["error"].tolist())
    assert (table["error"] == "").all() and table["path"].is_unique
    first = table[table["path"] == f"pose/{TRAIN_JSON}#annotation 1"].iloc[0]
    assert (first["image"], first["image_id"], first["num_keypoints"], first["labelled"], first["visible"]) == (
        "pose/train/a.jpg", 1, 15, 15, 14)
    crowd = table[table["path"] == f"pose/{TRAIN_JSON}#annotation 4"].iloc[0]
    assert (crowd["iscrowd"], crowd["area"], crowd["keypoints_split"]) == (1, 400.0, "")
    image = table[table["path"] == f"pose/{VAL_JSON}#image 12"].iloc[0]
    assert (image["image"], image["width"], image["height"], len(image["sha256"])) == ("pose/val/e.jpg", 64, 48, 64)
    assert set(table["keypoints_split"]) == {"", "train", "val"}


def _outside(data):
    data["annotations"][1]["keypoints"][9 * 3:9 * 3 + 2] = [70, 20]  # left_wrist


def _visibility(data):
    data["annotations"][0]["keypoints"][3 * 3 + 2] = 3  # left_ear: labelled, but v=3


def _duplicate_image(folder: Path):
    write_image(folder / "train" / "f.jpg", 77)
    edit("train", lambda data: data["images"].append({"id": 1, "file_name": "f.jpg", "width": WIDTH,
                                                      "height": HEIGHT}))(folder)


def _rename(folder: Path, name: str):
    (folder / "val" / "e.jpg").unlink()
    edit("val", lambda data: data["images"][1].update(file_name=name))(folder)


def _link(folder: Path):
    (folder / "val" / "e.jpg").unlink()
    (folder / "val" / "e.jpg").symlink_to(folder / "val" / "d.jpg")


def _same_id(folder: Path):
    def change(data):
        data["images"][0]["id"] = 3
        data["annotations"][0]["image_id"] = 3
    edit("val", change)(folder)


def _bad_rle(data):
    data["annotations"][3]["segmentation"]["counts"] = "zzzz"


FAULTS = {
    # name: (damage the folder, the row's path, the flag it fails, text in its error)
    "keypoint outside the image": (
        edit("train", _outside), f"{TRAIN_JSON}#annotation 2", "keypoints_inside",
        f"{TRAIN_JSON}#annotation 2: keypoint 'left_wrist' (x=70, y=20) lies outside the 64x48 image"),
    "visibility not 0/1/2": (edit("train", _visibility), f"{TRAIN_JSON}#annotation 1", "visibility_ok",
                             "visibility of 'left_ear' (v=3) is not 0"),
    "keypoints not 51 numbers": (edit("val", lambda data: data["annotations"][0]["keypoints"].pop()),
                                 f"{VAL_JSON}#annotation 11", "keypoints_shape", "keypoints is 50 values, not 51"),
    "num_keypoints disagrees": (edit("val", lambda data: data["annotations"][2].update(num_keypoints=3)),
                                f"{VAL_JSON}#annotation 13", "count_matches",
                                "num_keypoints is 3 but 12 keypoints are labelled"),
    "orphan annotation": (edit("train", lambda data: data["annotations"][2].update(image_id=999)),
                          f"{TRAIN_JSON}#annotation 3", "has_image",
                          f"its image_id 999 is no image of {TRAIN_JSON}"),
    "duplicate annotation id": (edit("train", lambda data: data["annotations"][1].update(id=1)),
                                f"{TRAIN_JSON}#annotations[1] (id 1)", "unique_id",
                                "the annotation id 1 is used by 2 annotations"),
    "duplicate image id": (_duplicate_image, f"{TRAIN_JSON}#images[3]", "unique_id",
                           f"{TRAIN_JSON}#images[3]: the image id 1 is used by 2 images"),
    "bbox outside the image": (edit("val", lambda data: data["annotations"][2].update(bbox=[40, 25, 30, 10])),
                               f"{VAL_JSON}#annotation 13", "bbox_ok",
                               "bbox [40, 25, 30, 10] reaches outside the 64x48 image"),
    "bbox of no size": (edit("val", lambda data: data["annotations"][0].update(bbox=[10, 10, 0, 5])),
                        f"{VAL_JSON}#annotation 11", "bbox_ok", "has a non-positive size"),
    "not the person category": (edit("train", lambda data: data["annotations"][0].update(category_id=2)),
                                f"{TRAIN_JSON}#annotation 1", "is_person",
                                "its category_id 2 is not the 'person' category's (1)"),
    "bad RLE segmentation": (edit("train", _bad_rle), f"{TRAIN_JSON}#annotation 4", "segmentation_ok",
                             "counts string is not COCO's compressed RLE"),
    "annotation field of a wrong type": (edit("val", lambda data: data["annotations"][0].update(iscrowd="no")),
                                         f"{VAL_JSON}#annotation 11", "fields_ok", "its iscrowd 'no' is not 0 or 1"),
    "image field of a wrong type": (edit("train", lambda data: data["images"][1].update(width="64")),
                                    f"{TRAIN_JSON}#image 2", "fields_ok", "its width '64' is not a positive integer"),
    "image missing": (lambda folder: (folder / "val" / "d.jpg").unlink(), f"{VAL_JSON}#image 11", "has_file",
                      f"{VAL_JSON}#image 11 (val/d.jpg): the file is missing"),
    "image does not decode": (lambda folder: (folder / "train" / "c.jpg").write_bytes(b"\xff\xd8\xff" * 20),
                              f"{TRAIN_JSON}#image 3", "decodes", f"{TRAIN_JSON}#image 3 (train/c.jpg): "),
    "image size disagrees": (lambda folder: write_image(folder / "train" / "c.jpg", 5, (60, 48)),
                             f"{TRAIN_JSON}#image 3", "size_matches", "the image is 60x48 but the JSON says 64x48"),
    "file_name climbs out": (lambda folder: _rename(folder, "../e.jpg"), f"{VAL_JSON}#image 12", "name_ok",
                             "its file_name '../e.jpg' is not a plain file name"),
    "file_name absolute": (lambda folder: _rename(folder, "/etc/passwd"), f"{VAL_JSON}#image 12", "name_ok",
                           "its file_name '/etc/passwd' is not a plain file name"),
    "file_name with a separator": (lambda folder: _rename(folder, "sub/e.jpg"), f"{VAL_JSON}#image 12",
                                   "name_ok", "is not a plain file name"),
    "image is a link": (_link, f"{VAL_JSON}#image 12", "name_ok", "(val/e.jpg): is a symbolic link"),
    "same bytes in both splits": (
        lambda folder: (folder / "val" / "e.jpg").write_bytes((folder / "train" / "b.jpg").read_bytes()),
        f"{VAL_JSON}#image 12", "one_split", f"{TRAIN_JSON} has an image with the same bytes as train/b.jpg"),
    "same id in both splits": (_same_id, f"{VAL_JSON}#image 3", "one_split",
                               f"{TRAIN_JSON} has an image with the same image id 3"),
    "same file_name in both splits": (
        lambda folder: (os.rename(folder / "val" / "d.jpg", folder / "val" / "a.jpg"),
                        edit("val", lambda data: data["images"][0].update(file_name="a.jpg"))(folder)),
        f"{VAL_JSON}#image 11", "one_split", "the same file_name 'a.jpg'"),
    "file no image names": (lambda folder: write_image(folder / "train" / "stray.jpg", 99), "train/stray.jpg",
                            "listed", f"train/stray.jpg: no image of {TRAIN_JSON} names it"),
    "another annotation file": (lambda folder: (folder / "annotations" / "captions_train.json").write_text("{}"),
                                "annotations/captions_train.json", "listed", "is not one of the task's"),
    "JSON does not parse": (lambda folder: (folder / VAL_JSON).write_text('{"images": ['), VAL_JSON, "json_ok",
                            f"{VAL_JSON}: is not valid JSON"),
    "JSON missing": (lambda folder: (folder / VAL_JSON).unlink(), VAL_JSON, "json_ok", f"{VAL_JSON}: is missing"),
    "keypoint names not COCO's": (
        edit("train", lambda data: data["categories"][0].update(keypoints=list(reversed(COCO_KEYPOINTS)))),
        TRAIN_JSON, "categories_ok", "keypoints are not COCO's 17 names in order"),
}
TWO_ROWS = {"duplicate annotation id": f"{TRAIN_JSON}#annotations[0] (id 1)",
            "duplicate image id": f"{TRAIN_JSON}#images[0]", "same bytes in both splits": f"{TRAIN_JSON}#image 2",
            "same id in both splits": f"{TRAIN_JSON}#image 3", "same file_name in both splits": f"{TRAIN_JSON}#image 1"}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_fails_one_flag_on_the_row_that_has_it(tmp_path, fault):
    write_coco(tmp_path)
    damage, path, flag, text = FAULTS[fault]
    damage(tmp_path)
    table = coco.manifest(tmp_path)
    rows = table[table["path"] == path]
    assert len(rows) == 1, f"no row named {path}: {table['path'].tolist()}"
    row = rows.iloc[0]
    assert failed_flags(row) == {flag}, row.to_dict()  # one problem, one flag
    assert text in row["error"], row["error"]
    assert row["error"].startswith(path.split("#")[0]) or path.split("#")[0] in row["error"]  # names its file
    others = table[table["path"] != path]
    failing = others[others.apply(failed_flags, axis=1).map(bool)]
    expected = {TWO_ROWS[fault]: {flag}} if fault in TWO_ROWS else {}
    assert {row["path"]: failed_flags(row) for _, row in failing.iterrows()} == expected, failing["error"].tolist()


def test_the_suite_passes_a_clean_folder_and_names_the_bad_rows(tmp_path):
    from zooflow.validation.runner import validate

    write_coco(tmp_path / "clean")
    clean = validate(coco.manifest(tmp_path / "clean"), coco.expectations(), "pose-clean")
    assert clean.success, clean.failures
    assert clean.expectations == len(coco.FLAGS) + 1

    folder = write_coco(tmp_path / "broken")
    for fault in ("keypoint outside the image", "image missing", "file no image names"):
        FAULTS[fault][0](folder)
    edit("val", lambda data: data["annotations"].clear())(folder)  # val has no people left
    report = validate(coco.manifest(folder), coco.expectations(), "pose-broken")
    assert not report.success
    lines = "\n".join(report.failures)
    assert (f"expect_column_values_to_be_in_set(keypoints_inside): {TRAIN_JSON}#annotation 2: "
            "keypoints_inside=False (annotations/person_keypoints_train.json#annotation 2: keypoint 'left_wrist'"
            in lines), lines
    assert f"expect_column_values_to_be_in_set(has_file): {VAL_JSON}#image 11: " in lines
    assert "expect_column_values_to_be_in_set(listed): train/stray.jpg: " in lines
    assert "expect_column_distinct_values_to_contain_set(keypoints_split): no rows with keypoints_split='val'" \
        in lines


# -- the dataset ------------------------------------------------------------------------------------

def test_the_dataset_yields_keypoints_boxes_and_an_ignore_mask_of_crowds(tmp_path):
    from torchvision import tv_tensors

    write_coco(tmp_path)
    train = coco.PoseDataset(tmp_path, "train")
    assert len(train) == 3 and train.image_ids == [1, 2, 3]
    assert train.image_path(1) == tmp_path / "train" / "b.jpg" and [a["id"] for a in train.annotations(1)] == [3, 4]
    image, target = train[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, HEIGHT, WIDTH)
    assert target["keypoints"].dtype == torch.float32 and target["keypoints"].shape == (2, 17, 3)
    assert target["keypoints"][1, 0].tolist() == [30.0, 20.0, 1.0] and target["keypoints"][0, 0, 2] == 0
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].format.value == "XYXY"
    assert target["boxes"][1].tolist() == [30.0, 20.0, 47.0, 37.0]
    assert target["ignore"].dtype == torch.bool and target["ignore"].shape == (HEIGHT, WIDTH)
    assert not target["ignore"].any()

    _, crowded = train[1]  # one person and a crowd (RLE)
    top, left, height, width = CROWD
    expected = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    expected[top:top + height, left:left + width] = True
    assert crowded["keypoints"].shape == (1, 17, 3) and torch.equal(crowded["ignore"], expected)

    _, nobody = train[2]
    assert nobody["keypoints"].shape == (0, 17, 3) and nobody["boxes"].shape == (0, 4)

    val = coco.PoseDataset(tmp_path, "val")
    _, target = val[1]  # a person with no labelled keypoint (a polygon) and one with some
    assert target["keypoints"].shape == (1, 17, 3)
    assert target["ignore"][5, 5] and target["ignore"][9, 11] and not target["ignore"][20, 20]


def test_the_dataset_moves_boxes_and_ignore_with_a_v2_transform(tmp_path):
    from torchvision.transforms import v2

    write_coco(tmp_path)
    flipped = coco.PoseDataset(tmp_path, "train", transform=v2.RandomHorizontalFlip(p=1.0))
    image, target = flipped[1]
    top, left, height, width = CROWD
    unflipped = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    unflipped[top:top + height, left:left + width] = True
    assert torch.equal(target["ignore"], unflipped.flip(-1))
    assert target["boxes"][0].tolist() == [WIDTH - 22.0, 5.0, WIDTH - 5.0, 22.0]


def test_the_dataset_names_a_bad_file_name(tmp_path):
    write_coco(tmp_path)
    edit("val", lambda data: data["images"][0].update(file_name="../../x.jpg"))(tmp_path)
    with pytest.raises(coco.CocoError, match=r"#image 11: its file_name '../../x.jpg' is not a plain file name"):
        coco.PoseDataset(tmp_path, "val")[0]


# -- the importer -----------------------------------------------------------------------------------

def download(folder: Path) -> Path:
    """A COCO 2017 download as it is laid out (other annotation files, unlisted images, test2017/,
    a Mac's litter)."""
    write_coco(folder, suffix="2017")
    (folder / "annotations" / "captions_train2017.json").write_text("{}")
    (folder / "annotations" / "instances_val2017.json").write_text("{}")
    write_image(folder / "train2017" / "000000000009.jpg", 50)
    (folder / "train2017" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "val2017" / "._d.jpg").write_bytes(b"\0\5\26\7")
    write_image(folder / "test2017" / "t.jpg", 51)
    (folder / "README.txt").write_text("COCO 2017, CC BY 4.0\n")
    return folder


def test_import_copies_only_what_the_keypoint_files_list(tmp_path):
    source = download(tmp_path / "coco")
    target = tmp_path / "data" / "pose"
    imported = import_coco_keypoints(source, target)
    expected = {TRAIN_JSON: "annotations/person_keypoints_train2017.json",
                VAL_JSON: "annotations/person_keypoints_val2017.json", "README.txt": "README.txt",
                **{f"train/{name}": f"train2017/{name}" for name in ("a.jpg", "b.jpg", "c.jpg")},
                **{f"val/{name}": f"val2017/{name}" for name in ("d.jpg", "e.jpg")}}
    assert files_under(target) == set(expected)
    for name, origin in expected.items():
        assert (target / name).read_bytes() == (source / origin).read_bytes(), name
    assert imported.classes == ("person",) and set(imported.skipped) == {"train2017/.DS_Store", "val2017/._d.jpg"}
    notes = "\n".join(imported.notes)
    assert "captions_train2017.json, instances_val2017.json in annotations/" in notes
    assert "left out 1 entry in train2017/ that person_keypoints_train2017.json does not list (000000000009.jpg)" \
        in notes
    assert "test2017/ (not used by pose)" in notes and "renamed" in notes
    table = coco.manifest(target)
    assert all(table[flag].all() for flag in coco.FLAGS) and (table["kind"] == "person").sum() == 7


@pytest.mark.parametrize("link_at", ["train2017/b.jpg", "annotations/captions_train2017.json", "test2017"])
def test_a_symlink_anywhere_is_refused_by_name_and_nothing_is_written_outside_the_target(tmp_path, link_at):
    source = download(tmp_path / "coco")
    link = source / link_at
    if link.is_dir():
        os.rename(link, tmp_path / "moved")
    else:
        link.unlink()
    link.symlink_to("/etc/passwd")
    before = files_under(tmp_path)
    with pytest.raises(ImportRejected, match="symbolic link") as refused:
        import_coco_keypoints(source, tmp_path / "out" / "pose")
    assert str(link) in str(refused.value)
    assert {name for name in files_under(tmp_path) - before if not name.startswith("out/pose/")} == set()
    assert not any("passwd" in name for name in files_under(tmp_path / "out"))


def test_import_refuses_an_unsafe_file_name_and_a_folder_that_is_not_coco(tmp_path):
    source = write_coco(tmp_path / "a")
    edit("train", lambda data: data["images"][0].update(file_name="../../../etc/passwd"))(source)
    with pytest.raises(ImportRejected, match=r"person_keypoints_train.json: images\[0\] \(id 1\): its file_name "
                                             r"'../../../etc/passwd' is not a plain file name"):
        import_coco_keypoints(source, tmp_path / "t")
    assert not (tmp_path / "etc").exists()

    (tmp_path / "b").mkdir()
    with pytest.raises(ImportRejected, match="is not a COCO keypoints dataset"):
        import_coco_keypoints(tmp_path / "b", tmp_path / "t")

    source = write_coco(tmp_path / "c")
    (source / VAL_JSON).write_text("not json")
    with pytest.raises(InputRejected, match="person_keypoints_val.json: is not valid JSON"):
        import_coco_keypoints(source, tmp_path / "t")
