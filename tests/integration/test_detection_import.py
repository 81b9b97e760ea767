"""Importing a Pascal VOC dataset the way users bring it (a VOCdevkit with litter, segmentation
parts, per-class lists and images no split uses), and validating what was imported with the real
Great Expectations suite: every broken variant fails validation with the file (and the object)
named. The transactional ``import_dataset`` around these is tested with the task's config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import files_under
from tests.unit.test_voc import EXTERNAL_ENTITY, write_annotation, write_image, write_voc
from zooflow.data.safety import ImportRejected
from zooflow.errors import InputRejected
from zooflow.tasks.detection import voc
from zooflow.tasks.detection.importer import import_voc
from zooflow.validation.runner import validate

LISTED = [f"img_000{number}" for number in range(1, 7)]


def download(folder: Path) -> Path:
    """A VOCdevkit as a real VOC2012 download (plus a Mac's litter) holds it; the VOC folder."""
    root = write_voc(folder)
    devkit = root.parent
    for litter in (devkit / ".DS_Store", root / voc.IMAGES / ".DS_Store", root / voc.IMAGES / "._img_0001.jpg"):
        litter.write_bytes(b"\0\0\0\1Bud1")
    (devkit / "__MACOSX" / "VOC2012").mkdir(parents=True)
    (devkit / "__MACOSX" / "VOC2012" / "._img_0001.jpg").write_bytes(b"resource fork")
    main = root / voc.SPLIT_FOLDER
    (main / "trainval.txt").write_text("".join(f"{image_id}\n" for image_id in LISTED))
    (main / "cat_train.txt").write_text("img_0001  1\nimg_0002 -1\n")
    (main / "dog_val.txt").write_text("img_0005  1\n")
    (root / "ImageSets" / "Segmentation").mkdir()
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("img_0001\n")
    write_image(root / "SegmentationClass" / "img_0001.png", 50)
    write_image(root / "SegmentationObject" / "img_0001.png", 51)
    for seed, extra in enumerate(("2008_000001", "2008_000002", "2008_000003"), 60):
        write_image(root / voc.IMAGES / f"{extra}.jpg", seed)
    write_annotation(root, "2008_000001")
    return root


# -- what an import copies, leaves out and refuses ------------------------------------------------

def test_import_copies_only_the_listed_detection_data_and_says_what_it_left_out(tmp_path):
    root = download(tmp_path / "source")
    target = tmp_path / "data" / "detection"
    imported = import_voc(root.parent, target)

    copied = target / voc.DEVKIT / "VOC2012"
    expected = ({f"{voc.IMAGES}/{image_id}.jpg" for image_id in LISTED}
                | {f"{voc.ANNOTATIONS}/{image_id}.xml" for image_id in LISTED}
                | {"ImageSets/Main/train.txt", "ImageSets/Main/val.txt", "classes.txt"})
    assert files_under(target) == {f"VOCdevkit/VOC2012/{name}" for name in expected}
    for name in expected - {"classes.txt", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt"}:
        assert (copied / name).read_bytes() == (root / name).read_bytes(), name
    assert voc.read_split(copied, "val") == ["img_0005", "img_0006"]
    assert imported.classes == voc.VOC_CLASSES and voc.read_classes(copied) == list(voc.VOC_CLASSES)
    assert imported.converted == ()
    assert set(imported.skipped) == {".DS_Store", "__MACOSX/", "VOC2012/JPEGImages/.DS_Store",
                                     "VOC2012/JPEGImages/._img_0001.jpg"}
    notes = "\n".join(imported.notes)
    assert "left out 3 images in JPEGImages/ listed in no detection split (2008_000001.jpg" in notes
    assert "left out 1 annotation in Annotations/ listed in no detection split (2008_000001.xml)" in notes
    assert "SegmentationClass/, SegmentationObject/, ImageSets/Segmentation/ (not used by detection)" in notes
    assert "per-class lists in ImageSets/Main (cat_train.txt, dog_val.txt)" in notes
    assert "trainval.txt in ImageSets/Main" in notes


@pytest.mark.parametrize("where", ["voc folder", "download folder"])
def test_import_accepts_the_voc_folder_itself_or_the_folder_a_download_extracts_to(tmp_path, where):
    root = write_voc(tmp_path / "VOCtrainval_11-May-2012", classes=["cat", "dog"])
    source = root if where == "voc folder" else tmp_path / "VOCtrainval_11-May-2012"
    imported = import_voc(source, tmp_path / "target")
    assert imported.classes == ("cat", "dog")
    assert voc.voc_root(tmp_path / "target").name == "VOC2012"
    assert (tmp_path / "target" / "VOCdevkit" / "VOC2012" / "classes.txt").read_text() == "cat\ndog\n"


def test_a_png_image_is_imported_when_that_is_what_exists(tmp_path):
    root = write_voc(tmp_path / "source")
    (root / voc.IMAGES / "img_0002.jpg").unlink()
    write_image(root / voc.IMAGES / "img_0002.png", 9)
    write_annotation(root, "img_0002", filename="img_0002.png")
    import_voc(root.parent, tmp_path / "target")
    assert (tmp_path / "target" / "VOCdevkit" / "VOC2012" / voc.IMAGES / "img_0002.png").is_file()


@pytest.mark.parametrize("link_at", ["JPEGImages/img_0001.jpg", "Annotations/img_0002.xml", "SegmentationClass"])
def test_a_symlink_anywhere_is_refused_by_name_and_nothing_is_written_outside_the_target(tmp_path, link_at):
    root = download(tmp_path / "source")
    link = root / link_at
    if link.is_dir():
        os.rename(link, tmp_path / "moved")
    else:
        link.unlink()
    link.symlink_to("/etc/passwd")
    target = tmp_path / "out" / "detection"
    before = files_under(tmp_path)
    with pytest.raises(ImportRejected, match="symbolic link") as refused:
        import_voc(root.parent, target)
    assert str(link) in str(refused.value) and "root:" not in str(refused.value)
    assert {name for name in files_under(tmp_path) - before if not name.startswith("out/detection/")} == set()
    assert not any("passwd" in name for name in files_under(target))


def test_import_refusals_name_what_is_wrong(tmp_path):
    root = write_voc(tmp_path / "a")
    (root.parent / "VOC2007").mkdir()
    with pytest.raises(ImportRejected, match=r"2 VOC folders \(VOC2007, VOC2012\); import one of them"):
        import_voc(root.parent, tmp_path / "t")

    root = write_voc(tmp_path / "b")
    (root / voc.SPLIT_FOLDER / "val.txt").unlink()
    with pytest.raises(ImportRejected, match=r"ImageSets/Main/val.txt: is missing"):
        import_voc(root.parent, tmp_path / "t")

    root = write_voc(tmp_path / "c", classes=["cat", "<script>"])
    with pytest.raises(InputRejected, match=r"classes.txt line 2: the class name '<script>' is not allowed"):
        import_voc(root.parent, tmp_path / "t")

    root = write_voc(tmp_path / "d")
    (root / voc.SPLIT_FOLDER / "train.txt").write_text("img_0001\n../../etc/passwd\n")
    with pytest.raises(InputRejected, match=r"train.txt line 2: the image id '../../etc/passwd' is not a plain"):
        import_voc(root.parent, tmp_path / "t")

    mine = tmp_path / "e" / "mydata"
    write_voc(tmp_path / "e").rename(mine)
    with pytest.raises(ImportRejected, match="named VOC<something>"):
        import_voc(mine, tmp_path / "t")

    with pytest.raises(ImportRejected, match="is not a Pascal VOC dataset"):
        import_voc(tmp_path / "e", tmp_path / "t")


# -- validating what was imported -------------------------------------------------------------------

def imported_and_validated(tmp_path: Path, damage=None, after_import=None):
    """Import a (possibly damaged) download into ``data/detection`` and validate it as a run
    would: manifest paths relative to data/."""
    root = download(tmp_path / "source")
    if damage:
        damage(root)
    data = tmp_path / "data"
    import_voc(root.parent, data / "detection")
    if after_import:
        after_import(voc.voc_root(data / "detection"))
    classes = voc.read_classes(voc.voc_root(data / "detection"))
    table = voc.manifest(data / "detection", classes, relative_to=data)
    return validate(table, voc.expectations(classes), "t")


def test_a_clean_import_passes_validation(tmp_path):
    report = imported_and_validated(tmp_path)
    assert report.success, report.failures
    assert report.rows == 12 and report.expectations == 11


def _second_box(root, box):
    write_annotation(root, "img_0002", [{"name": "cat", "box": (5, 6, 30, 40)}, {"name": "cat", "box": box}])


BROKEN = {
    # name: (damage the source, damage the imported folder, the row named, the expectation's column, error text)
    "box outside the image": (lambda root: _second_box(root, (5, 3, 400, 80)), None,
                              "Annotations/img_0002.xml#object2", "box_ok", "leaves the 64x48 image"),
    "xmin >= xmax": (lambda root: _second_box(root, (50, 3, 10, 20)), None,
                     "Annotations/img_0002.xml#object2", "box_ok", "xmin 50 >= xmax 10"),
    "unknown class": (lambda root: write_annotation(root, "img_0003", [{"name": "cat", "box": (1, 1, 9, 9)},
                                                                      {"name": "dgo", "box": (1, 1, 9, 9)}]), None,
                      "Annotations/img_0003.xml#object2", "label_known", "class 'dgo' is not in"),
    "xml size mismatch": (lambda root: write_annotation(root, "img_0005", size=(500, 375)), None,
                          "Annotations/img_0005.xml#object1", "size_matches",
                          "XML says 500x375 but the image is 64x48"),
    "train image without objects": (lambda root: write_annotation(root, "img_0004", []), None,
                                    "Annotations/img_0004.xml", "train_without_objects", "without any object"),
    "id in both splits": (lambda root: (root / voc.SPLIT_FOLDER / "val.txt").write_text("img_0005\nimg_0006\n"
                                                                                         "img_0001\n"), None,
                          "Annotations/img_0001.xml#object1", "in_other_split", "listed in both"),
    "listed image missing": (lambda root: (root / voc.IMAGES / "img_0003.jpg").unlink(), None,
                             "Annotations/img_0003.xml", "has_image", "JPEGImages/img_0003.jpg is missing"),
    "image in no split": (None, lambda root: write_image(root / voc.IMAGES / "stray.jpg", 77),
                          "JPEGImages/stray.jpg", "listed", "is in no split"),
    "xml does not parse": (lambda root: (root / voc.ANNOTATIONS / "img_0006.xml").write_text("<annotation><obj"),
                           None, "Annotations/img_0006.xml", "xml_ok", "the XML does not parse"),
    "xml with an external entity": (lambda root: (root / voc.ANNOTATIONS / "img_0006.xml").write_text(EXTERNAL_ENTITY),
                                    None, "Annotations/img_0006.xml", "xml_ok", "DTDs and entities are refused"),
}


@pytest.mark.parametrize("variant", list(BROKEN))
def test_each_broken_variant_fails_validation_naming_the_file(tmp_path, variant):
    damage, after_import, path, column, text = BROKEN[variant]
    report = imported_and_validated(tmp_path, damage, after_import)
    assert report.success is False
    named = f"detection/VOCdevkit/VOC2012/{path}: "
    lines = [line for line in report.failures if named in line]
    assert lines, report.failures
    assert any(f"({column})" in line and text in line for line in lines), lines
    if "#object" not in path:  # an image-level fault is not blamed on any object row
        assert not any("#object" in line for line in report.failures if f"({column})" in line)


# -- the whole `zooflow data import detection` -----------------------------------------------------

def test_zooflow_data_import_detection_records_a_version_or_changes_nothing(tmp_path, monkeypatch):
    """Through the real CLI: a VOC download with junk becomes a new data version; a broken one
    is refused by validation naming the file, with data/ and data.dvc exactly as before."""
    from tests.cli import assert_one_clear_message, run_cli
    from tests.conftest import make_project
    from zooflow.data import store

    root = make_project(tmp_path / "project", datasets=("classification",))
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    source = download(tmp_path / "download" / "VOCdevkit")
    code, output = run_cli("data", "import", "detection", source.parent)
    assert code == 0, output
    assert "left out" in output and "__MACOSX" in output
    imported = root / "data" / "detection" / "VOCdevkit" / "VOC2012"
    assert sorted(p.stem for p in (imported / voc.IMAGES).iterdir()) == LISTED
    assert store.is_clean(root)
    pointer = (root / "data.dvc").read_bytes()

    _second_box(source, (5, 5, 9999, 40))  # a box far outside its image
    code, output = run_cli("data", "import", "detection", source.parent)
    assert code == 1
    assert_one_clear_message(output, "img_0002.xml#object2", "box_ok")
    assert (root / "data.dvc").read_bytes() == pointer and store.is_clean(root)
