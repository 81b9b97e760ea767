"""The import rules: safe names, litter, confinement, no links."""

import os

import pytest

from zooflow.data import safety


@pytest.mark.parametrize("name", ["pos", "neg", "ants", "ポジティブ", "ネガティブ", "中立", "café", "class_1",
                                  "bees-2", "v1.0", "two words", "_private", "9", "a" * 64])
def test_safe_names_pass(name):
    assert safety.check_name(name, "x") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../../x", "/abs/path", "a/b", "a\\b", "<b>", "po`s", "pos\n",
                                  "pos\nneg", "tab\there", "bell\x07", " lead", "trail ", "dot.", ".hidden",
                                  "-dash", "a" * 65, "rtl\u202eoverride", "zero\u200bwidth", "semi;colon"])
def test_unsafe_names_are_refused_with_the_name_and_the_rule(name):
    with pytest.raises(safety.ImportRejected, match="must be letters or digits") as refused:
        safety.check_name(name, "table.tsv row 7")
    assert "table.tsv row 7" in str(refused.value) and repr(name) in str(refused.value)


def test_decomposed_unicode_names_are_refused_with_the_composed_form():
    with pytest.raises(safety.ImportRejected, match="NFC"):
        safety.check_name("cafe\u0301", "x")


@pytest.mark.parametrize("name", ["Thumbs.db", "desktop.ini", ".DS_Store", "._photo.jpg", ".directory"])
def test_os_litter_files(name):
    assert safety.is_junk(name)


def test_litter_folders_and_real_files():
    assert safety.is_junk("__MACOSX", folder=True) and safety.is_junk(".ipynb_checkpoints", folder=True)
    assert not safety.is_junk("photo.jpg") and not safety.is_junk("train", folder=True)


def test_paths_must_stay_inside_the_target(tmp_path):
    assert safety.inside(tmp_path, tmp_path / "a" / "b.txt")
    for escape in (tmp_path / ".." / "x", tmp_path / "a" / ".." / ".." / "x", tmp_path / "/etc/passwd"):
        with pytest.raises(safety.ImportRejected, match="outside"):
            safety.inside(tmp_path, escape)


def test_listing_skips_litter_and_refuses_every_kind_of_link(tmp_path):
    (tmp_path / "src" / "train").mkdir(parents=True)
    (tmp_path / "src" / "a.jpg").write_bytes(b"x")
    (tmp_path / "src" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "src" / "__MACOSX").mkdir()
    listing = safety.list_folder(tmp_path / "src")
    assert listing.files == ["a.jpg"] and listing.folders == ["train"]
    assert listing.skipped == [".DS_Store", "__MACOSX/"]
    links = {"to_file": tmp_path / "src" / "a.jpg", "to_dir": tmp_path / "src" / "train",
             "dangling": tmp_path / "nowhere", "loop": tmp_path / "src" / "loop"}
    for name, target in links.items():
        os.symlink(target, tmp_path / "src" / name)
        with pytest.raises(safety.ImportRejected, match=f"src/{name}: is a symbolic link"):
            safety.list_folder(tmp_path / "src")
        os.unlink(tmp_path / "src" / name)


def test_reading_and_copying_never_follow_links(tmp_path):
    (tmp_path / "real.txt").write_text("secret")
    os.symlink(tmp_path / "real.txt", tmp_path / "link.txt")
    with pytest.raises(safety.ImportRejected, match="symbolic link"):
        safety.read_bytes(tmp_path / "link.txt")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(safety.ImportRejected, match="not a regular file"):
        safety.read_bytes(tmp_path / "pipe")
    safety.copy_file(tmp_path / "real.txt", tmp_path / "out", tmp_path / "out" / "a" / "copy.txt")
    assert (tmp_path / "out" / "a" / "copy.txt").read_text() == "secret"
    with pytest.raises(safety.ImportRejected, match="outside"):
        safety.copy_file(tmp_path / "real.txt", tmp_path / "out", tmp_path / "out" / ".." / "escaped.txt")
    assert not (tmp_path / "escaped.txt").exists()


def test_the_source_itself_is_resolved_once(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert safety.resolve_source(tmp_path / "alias") == (tmp_path / "real").resolve()
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    with pytest.raises(safety.ImportRejected, match="dangling"):
        safety.resolve_source(tmp_path / "dangling")
    with pytest.raises(safety.ImportRejected, match="no such file or folder"):
        safety.resolve_source(tmp_path / "missing")


def test_every_label_in_every_split(tmp_path):
    safety.require_every_split({"train": {"a", "b"}, "test": {"a", "b"}}, tmp_path)
    with pytest.raises(safety.ImportRejected, match="'c' is in test but missing from train"):
        safety.require_every_split({"train": {"a"}, "test": {"a", "c"}}, tmp_path)
