"""The bad-input corpus of `zooflow data import`: what real users bring by mistake, each case a
small source built under tmp_path and imported through the real entry point in-process.

Every case ends in one of three ways:
- refused: non-zero exit, one message naming the file/row/key and what is wrong, no traceback,
  and data/, data.dvc, the registry and everything outside the project exactly as before;
- converted on purpose: accepted (exit 0) and the conversion is reported;
- accepted with litter skipped: exit 0 and the skipped files are reported.

One project serves the whole module: refusals leave it unchanged (that is what is checked), and
an accepted case simply becomes the version the next case starts from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import assert_one_clear_message, run_cli
from tests.conftest import make_project, using_project
from zooflow.data import importer, mnist, store

REFUSED, CONVERTED, JUNK, ACCEPTED = "refused", "converted on purpose", "accepted, junk skipped", "accepted"


@dataclass(frozen=True)
class Case:
    build: object  # tmp_path -> source path
    task: str
    outcome: str
    names: tuple[str, ...]  # what the output must name


CASES: dict[str, Case] = {}


def case(task: str, outcome: str, *names: str):
    """Register a source builder as a corpus case."""
    def register(build):
        CASES[build.__name__] = Case(build, task, outcome, names)
        return build
    return register


# -- good sources the cases break ------------------------------------------------------------

def images(folder: Path, classes=("ants", "bees"), per_class=5, side=24, seed=0) -> Path:
    """A small valid ImageFolder: random (so distinct) JPEGs, 5 per class and split."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for label in classes:
            (folder / split / label).mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / label / f"{label}{index}.jpg")
    return folder


def table(path: Path, rows: list[tuple[str, ...]], header=("text", "label", "split"), encoding="utf-8") -> Path:
    sep = "\t" if path.suffix == ".tsv" else ","
    lines = [sep.join(header)] + [sep.join(row) for row in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def reviews(labels=("pos", "neg"), per_split=5) -> list[tuple[str, str, str]]:
    """Distinct English reviews, ``per_split`` per label and split."""
    words = {"pos": "a wonderful moving film", "neg": "a dull tedious film"}
    return [(f"{words.get(label, 'a film')} number {split} {index}", label, split)
            for split in ("train", "test") for label in labels for index in range(per_split)]


def acl(folder: Path, labels=("pos", "neg"), per_split=5) -> Path:
    for text, label, split in reviews(labels, per_split):
        (folder / split / label).mkdir(parents=True, exist_ok=True)
        (folder / split / label / f"{hashlib.md5(text.encode()).hexdigest()[:8]}_7.txt").write_text(text)
    return folder


def idx_source(folder: Path, train=30, test=30) -> Path:
    """A small MNIST idx download (raw/), valid in format (validation is not reached)."""
    rng = np.random.default_rng(1)
    for split, count in (("train", train), ("test", test)):
        mnist.write_idx(folder / "raw" / mnist.FILES[split][0], rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        mnist.write_idx(folder / "raw" / mnist.FILES[split][1], np.arange(count, dtype=np.uint8) % 10)
    return folder


def digit_folders(folder: Path, per_digit=2) -> Path:
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for digit in range(10):
            (folder / split / str(digit)).mkdir(parents=True, exist_ok=True)
            for index in range(per_digit):
                Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
                    folder / split / str(digit) / f"{index}.png")
    return folder


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (nothing that size is ever allocated)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# -- TSV / CSV (sentiment) ----------------------------------------------------------------------

@case("sentiment", REFUSED, "'../../x'", "row 12", "not allowed")
def tsv_dotdot_label(tmp):
    rows = reviews()
    rows[10] = (rows[10][0], "../../x", "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "row 2", "not allowed")
def tsv_absolute_label(tmp):
    rows = reviews()
    rows[0] = (rows[0][0], str(tmp / "escaped"), "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "'<b>pos</b>'", "row 3")
def tsv_markup_label(tmp):
    rows = reviews()
    rows[1] = (rows[1][0], "<b>pos</b>", "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "'po`s'", "row 4")
def tsv_backtick_label(tmp):
    rows = reviews()
    rows[2] = (rows[2][0], "po`s", "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "'pos\\nneg'", "row 2")
def tsv_newline_in_quoted_label(tmp):
    rows = reviews()
    rows[0] = (rows[0][0], '"pos\nneg"', "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "'pos\\x07'")
def tsv_control_character_label(tmp):
    rows = reviews()
    rows[0] = (rows[0][0], "pos\x07", "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "row 6 has an empty label")
def tsv_empty_label(tmp):
    rows = reviews()
    rows[4] = (rows[4][0], " ", "train")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "row 7 has an empty text")
def tsv_empty_text(tmp):
    rows = reviews()
    rows[5] = ("  ", rows[5][1], rows[5][2])
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "missing ['text']")
def tsv_missing_text_column(tmp):
    return table(tmp / "reviews.tsv", reviews(), header=("review", "label", "split"))


@case("sentiment", REFUSED, "reviews.csv", "missing ['label']")
def csv_missing_label_column(tmp):
    return table(tmp / "reviews.csv", reviews(), header=("text", "sentiment", "split"))


@case("sentiment", REFUSED, "reviews.tsv", "line 5 has 4 fields where the header has 3")
def tsv_ragged_row(tmp):
    rows = reviews()
    rows[3] = (*rows[3], "extra")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.csv", "line 4 opens a quoted field")
def csv_unbalanced_quote(tmp):
    rows = reviews()
    rows[2] = ('"it was fine', rows[2][1], rows[2][2])
    return table(tmp / "reviews.csv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "line 9 is not UTF-8")
def tsv_latin1_bytes(tmp):
    rows = reviews()
    rows[7] = ("a café with a view", rows[7][1], rows[7][2])
    path = table(tmp / "reviews.tsv", rows)
    path.write_bytes(path.read_bytes().replace("café".encode(), "café".encode("latin-1")))
    return path


@case("sentiment", REFUSED, "reviews.tsv", "is UTF-16")
def tsv_utf16_file(tmp):
    return table(tmp / "reviews.tsv", reviews(), encoding="utf-16")


@case("sentiment", ACCEPTED, "data/sentiment-en: classes ['neg', 'pos']")
def tsv_utf8_bom_accepted(tmp):
    return table(tmp / "reviews.tsv", reviews(), encoding="utf-8-sig")


@case("sentiment", REFUSED, "reviews.tsv", "row 2 has split 'validation'")
def tsv_unknown_split_value(tmp):
    rows = reviews()
    rows[0] = (rows[0][0], rows[0][1], "validation")
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "'neutral' is in train but missing from test")
def tsv_label_only_in_train(tmp):
    rows = reviews() + [(f"a so-so film {i}", "neutral", "train") for i in range(5)]
    return table(tmp / "reviews.tsv", rows)


@case("sentiment", REFUSED, "reviews.tsv", "the file is empty")
def tsv_empty_file(tmp):
    (tmp / "reviews.tsv").write_bytes(b"")
    return tmp / "reviews.tsv"


@case("sentiment", REFUSED, "reviews.tsv", "has a header but no rows")
def tsv_header_only(tmp):
    return table(tmp / "reviews.tsv", [])


@case("sentiment-ja", ACCEPTED, "data/sentiment-ja: classes ['ネガティブ', 'ポジティブ']")
def tsv_japanese_labels_accepted(tmp):
    rows = [(f"{'とても良い映画でした' if label == 'ポジティブ' else 'つまらない映画でした'}{split}{i}", label, split)
            for split in ("train", "test") for label in ("ポジティブ", "ネガティブ") for i in range(5)]
    return table(tmp / "reviews.tsv", rows)


# -- ImageFolder (classification) ---------------------------------------------------------------

@case("classification", REFUSED, "train/ants/passwd.jpg", "symbolic link", "/etc/passwd")
def img_symlink_to_etc_passwd(tmp):
    source = images(tmp / "src")
    os.symlink("/etc/passwd", source / "train" / "ants" / "passwd.jpg")
    return source


@case("classification", REFUSED, "train/bees/elsewhere.jpg", "symbolic link")
def img_symlink_to_image_outside(tmp):
    source = images(tmp / "src")
    Image.new("RGB", (32, 32), "red").save(tmp / "outside.jpg")
    os.symlink(tmp / "outside.jpg", source / "train" / "bees" / "elsewhere.jpg")
    return source


@case("classification", REFUSED, "val/ants/gone.jpg", "symbolic link")
def img_dangling_symlink(tmp):
    source = images(tmp / "src")
    os.symlink(tmp / "nowhere.jpg", source / "val" / "ants" / "gone.jpg")
    return source


@case("classification", REFUSED, "train/ants/loop", "symbolic link")
def img_symlink_loop(tmp):
    source = images(tmp / "src")
    os.symlink(source / "train" / "ants" / "loop", source / "train" / "ants" / "loop")
    return source


@case("classification", REFUSED, "val/bees", "symbolic link")
def img_symlinked_class_folder(tmp):
    source = images(tmp / "src")
    import shutil

    shutil.move(source / "val" / "bees", tmp / "bees-elsewhere")
    os.symlink(tmp / "bees-elsewhere", source / "val" / "bees")
    return source


@case("classification", REFUSED, "not an ImageFolder dataset", "no val folder")
def img_no_val_folder(tmp):
    source = images(tmp / "src")
    import shutil

    shutil.rmtree(source / "val")
    return source


@case("classification", REFUSED, "'wasps' is in train but missing from val")
def img_class_only_in_train(tmp):
    source = images(tmp / "src")
    images(tmp / "wasps", classes=("wasps",), seed=5)
    (tmp / "wasps" / "train" / "wasps").rename(source / "train" / "wasps")
    return source


@case("classification", REFUSED, "'<script>'", "class name", "not allowed")
def img_class_name_with_markup(tmp):
    source = images(tmp / "src", classes=("ants", "<script>"))
    return source


@case("classification", REFUSED, "'..ants'", "not allowed")
def img_class_folder_dotdot_like(tmp):
    return images(tmp / "src", classes=("ants", "..ants"))


@case("classification", REFUSED, "'bees '", "not allowed")
def img_class_folder_trailing_space(tmp):
    return images(tmp / "src", classes=("ants", "bees "))


@case("classification", REFUSED, "classes.txt", "declares 1 class")
def img_classes_txt_one_class(tmp):
    source = images(tmp / "src")
    (source / "classes.txt").write_text("ants\n")
    return source


@case("classification", REFUSED, "classes.txt line 3", "'ants' is declared twice")
def img_classes_txt_duplicate(tmp):
    source = images(tmp / "src")
    (source / "classes.txt").write_text("ants\nbees\nants\n")
    return source


@case("classification", REFUSED, "classes.txt", "declares ['wasps']", "no such class folder")
def img_classes_txt_class_without_folder(tmp):
    source = images(tmp / "src")
    (source / "classes.txt").write_text("ants\nbees\nwasps\n")
    return source


@case("classification", REFUSED, "classes.txt line 2", "'be<e>s'")
def img_classes_txt_markup(tmp):
    source = images(tmp / "src")
    (source / "classes.txt").write_text("ants\nbe<e>s\n")
    return source


@case("classification", REFUSED, "classification/train/ants/notes.txt", "not an image file extension")
def img_non_image_file(tmp):
    source = images(tmp / "src")
    (source / "train" / "ants" / "notes.txt").write_text("collected on a sunny day")
    return source


@case("classification", REFUSED, "classification/train/bees/cut.jpg", "cannot decode")
def img_truncated_jpeg(tmp):
    source = images(tmp / "src")
    data = (source / "train" / "bees" / "bees0.jpg").read_bytes()
    (source / "train" / "bees" / "cut.jpg").write_bytes(data[:len(data) // 2])
    return source


@case("classification", REFUSED, "classification/val/ants/empty.jpg", "empty file")
def img_zero_byte_file(tmp):
    source = images(tmp / "src")
    (source / "val" / "ants" / "empty.jpg").write_bytes(b"")
    return source


@case("classification", REFUSED, "classification/train/ants/bomb.png", "decompression bomb")
def img_decompression_bomb(tmp):
    source = images(tmp / "src")
    (source / "train" / "ants" / "bomb.png").write_bytes(bomb_png(30_000, 30_000))
    return source


@case("classification", REFUSED, "classification/train/ants/wide.png", "12000x20")
def img_side_over_max_side(tmp):
    source = images(tmp / "src")
    (source / "train" / "ants" / "wide.png").write_bytes(bomb_png(12_000, 20))
    return source


@case("classification", REFUSED, "classification/val/bees/tiny.jpg", "width=8")
def img_smaller_than_min_side(tmp):
    source = images(tmp / "src")
    Image.new("RGB", (8, 8), "blue").save(source / "val" / "bees" / "tiny.jpg")
    return source


@case("classification", REFUSED, "train/stray.jpg", "a file directly in train/")
def img_file_at_split_top_level(tmp):
    source = images(tmp / "src")
    Image.new("RGB", (32, 32), "green").save(source / "train" / "stray.jpg")
    return source


@case("classification", REFUSED, "test", "unknown split folder")
def img_unknown_split_folder(tmp):
    source = images(tmp / "src")
    (source / "test" / "ants").mkdir(parents=True)
    return source


@case("classification", REFUSED, "train/ants/more", "a folder inside the class folder")
def img_folder_where_a_file_belongs(tmp):
    source = images(tmp / "src")
    (source / "train" / "ants" / "more").mkdir()
    return source


@case("classification", REFUSED, "in_other_split=True", "classification/val/ants/copy.jpg")
def img_same_image_in_train_and_val(tmp):
    source = images(tmp / "src")
    (source / "val" / "ants" / "copy.jpg").write_bytes((source / "train" / "ants" / "ants0.jpg").read_bytes())
    return source


@case("classification", JUNK, "skipped 5 operating-system file(s)", "Thumbs.db", "train/.DS_Store", "__MACOSX/",
      "._ants0.jpg", "desktop.ini")
def img_os_junk_skipped(tmp):
    source = images(tmp / "src")
    (source / "train" / "ants" / "Thumbs.db").write_bytes(b"\0" * 10)
    (source / "train" / ".DS_Store").write_bytes(b"\0" * 10)
    (source / "__MACOSX" / "train").mkdir(parents=True)
    (source / "val" / "bees" / "._ants0.jpg").write_bytes(b"\0\x05\x16\x07")
    (source / "val" / "desktop.ini").write_text("[.ShellClassInfo]")
    return source


def _replace(source: Path, relative: str, image: Image.Image, **save) -> Path:
    target = source / relative
    for old in target.parent.glob(target.stem + ".*"):
        old.unlink()
    image.save(target, **save)
    return source


@case("classification", CONVERTED, "converted on load (16-bit->8-bit): 1 file(s): classification/train/ants/ants0.png")
def img_16bit_png(tmp):
    pixels = (np.random.default_rng(7).integers(0, 65536, (32, 32))).astype(np.uint16)
    return _replace(images(tmp / "src"), "train/ants/ants0.png", Image.fromarray(pixels))


@case("classification", CONVERTED, "converted on load (CMYK->RGB): 1 file(s): classification/val/bees/bees1.jpg")
def img_cmyk_jpeg(tmp):
    pixels = np.random.default_rng(8).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    return _replace(images(tmp / "src"), "val/bees/bees1.jpg", Image.frombytes("CMYK", (32, 32), pixels.tobytes()))


@case("classification", CONVERTED, "converted on load (alpha on white)", "classification/train/bees/bees2.png")
def img_palette_with_transparency(tmp):
    palette = Image.frombytes("P", (32, 32), np.random.default_rng(9).integers(0, 4, (32, 32), dtype=np.uint8).tobytes())
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    return _replace(images(tmp / "src"), "train/bees/bees2.png", palette, transparency=3)


@case("classification", CONVERTED, "converted on load (alpha on white)", "classification/val/ants/ants3.png")
def img_rgba_png(tmp):
    pixels = np.random.default_rng(10).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    return _replace(images(tmp / "src"), "val/ants/ants3.png", Image.frombytes("RGBA", (32, 32), pixels.tobytes()))


@case("classification", CONVERTED, "converted on load (exif-rotated): 1 file(s): classification/train/ants/ants4.jpg")
def img_exif_rotated_jpeg(tmp):
    image = Image.fromarray(np.random.default_rng(11).integers(0, 256, (20, 40, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return _replace(images(tmp / "src"), "train/ants/ants4.jpg", image, exif=exif.tobytes())


# -- aclImdb folders (sentiment) ----------------------------------------------------------------

@case("sentiment", REFUSED, "'neutral' is in test but missing from train")
def acl_label_only_in_test(tmp):
    source = acl(tmp / "aclImdb")
    (source / "test" / "neutral").mkdir()
    (source / "test" / "neutral" / "0_5.txt").write_text("it was a film")
    return source


@case("sentiment", REFUSED, "sentiment-en/train/pos/latin1_9.txt", "not UTF-8")
def acl_review_not_utf8(tmp):
    source = acl(tmp / "aclImdb")
    (source / "train" / "pos" / "latin1_9.txt").write_bytes("un film très émouvant".encode("latin-1"))
    return source


@case("sentiment", REFUSED, "sentiment-en/test/neg/empty_1.txt", "empty text")
def acl_empty_review(tmp):
    source = acl(tmp / "aclImdb")
    (source / "test" / "neg" / "empty_1.txt").write_text("  \n")
    return source


@case("sentiment", REFUSED, "train/neg/linked_3.txt", "symbolic link")
def acl_symlinked_review(tmp):
    source = acl(tmp / "aclImdb")
    (tmp / "elsewhere.txt").write_text("a review kept somewhere else")
    os.symlink(tmp / "elsewhere.txt", source / "train" / "neg" / "linked_3.txt")
    return source


@case("sentiment", REFUSED, "train/pos/review.html", "not a .txt file")
def acl_non_text_file(tmp):
    source = acl(tmp / "aclImdb")
    (source / "train" / "pos" / "review.html").write_text("<p>great</p>")
    return source


# -- MNIST (anomaly) ----------------------------------------------------------------------------

@case("anomaly", REFUSED, "train-images-idx3-ubyte.gz", "not a complete gzip file")
def idx_truncated_gz(tmp):
    source = idx_source(tmp / "download")
    for file in list((source / "raw").iterdir()):
        (source / "raw" / (file.name + ".gz")).write_bytes(gzip.compress(file.read_bytes()))
        file.unlink()
    cut = source / "raw" / "train-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:200])
    return source


@case("anomaly", REFUSED, "t10k-labels-idx1-ubyte", "not an idx file")
def idx_bad_magic(tmp):
    source = idx_source(tmp / "download")
    file = source / "raw" / "t10k-labels-idx1-ubyte"
    file.write_bytes(b"\x12\x34" + file.read_bytes()[2:])
    return source


@case("anomaly", REFUSED, "train-images-idx3-ubyte", "header says shape (30, 28, 28)")
def idx_header_size_mismatch(tmp):
    source = idx_source(tmp / "download")
    file = source / "raw" / "train-images-idx3-ubyte"
    file.write_bytes(file.read_bytes()[:-100])
    return source


@case("anomaly", REFUSED, "holds 30 images", "holds 20 labels")
def idx_count_mismatch(tmp):
    source = idx_source(tmp / "download")
    mnist.write_idx(source / "raw" / "t10k-labels-idx1-ubyte", np.arange(20, dtype=np.uint8) % 10)
    return source


@case("anomaly", REFUSED, "train-labels-idx1-ubyte", "label 12 at index 4")
def idx_label_twelve(tmp):
    source = idx_source(tmp / "download")
    labels = np.arange(30, dtype=np.uint8) % 10
    labels[4] = 12
    mnist.write_idx(source / "raw" / "train-labels-idx1-ubyte", labels)
    return source


@case("anomaly", REFUSED, "train-images-idx3-ubyte", "symbolic link")
def idx_symlinked_file(tmp):
    source = idx_source(tmp / "download")
    file = source / "raw" / "train-images-idx3-ubyte"
    file.rename(tmp / "kept-elsewhere")
    os.symlink(tmp / "kept-elsewhere", file)
    return source


@case("anomaly", REFUSED, "train/x", "must be named 0-9")
def digits_folder_named_x(tmp):
    source = digit_folders(tmp / "pngs")
    (source / "train" / "x").mkdir()
    return source


@case("anomaly", REFUSED, "test/3/odd.png", "must be 28x28, got 27x28")
def digits_image_27x28(tmp):
    source = digit_folders(tmp / "pngs")
    Image.new("L", (27, 28), 200).save(source / "test" / "3" / "odd.png")
    return source


@case("anomaly", REFUSED, "train/5/linked.png", "symbolic link")
def digits_symlink(tmp):
    source = digit_folders(tmp / "pngs")
    Image.new("L", (28, 28), 99).save(tmp / "outside.png")
    os.symlink(tmp / "outside.png", source / "train" / "5" / "linked.png")
    return source


@case("anomaly", REFUSED, "'7' is in train but missing from test")
def digits_missing_from_test(tmp):
    source = digit_folders(tmp / "pngs")
    import shutil

    shutil.rmtree(source / "test" / "7")
    return source


FASHION = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def named_idx_source(folder: Path, classes=FASHION) -> Path:
    """``idx_source`` with a classes.txt beside the idx files (Fashion-MNIST's names), big enough
    to pass validation (at least 20 per class in every split)."""
    source = idx_source(folder, train=1500, test=300)
    (source / "raw" / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    return source


@case("anomaly", REFUSED, "classes.txt", "declares 9 class names", "exactly 10 lines")
def idx_classes_nine_lines(tmp):
    return named_idx_source(tmp / "download", FASHION[:9])


@case("anomaly", REFUSED, "classes.txt line 10", "'../x' is not allowed")
def idx_classes_dot_dot(tmp):
    return named_idx_source(tmp / "download", FASHION[:9] + ["../x"])


@case("generation", REFUSED, "classes.txt", "symbolic link")
def idx_classes_symlinked(tmp):
    source = idx_source(tmp / "download")
    (tmp / "names.txt").write_text("".join(f"{name}\n" for name in FASHION))
    os.symlink(tmp / "names.txt", source / "raw" / "classes.txt")
    return source


@case("anomaly", ACCEPTED, "classes ['T-shirt_top', 'Trouser'")
def idx_with_class_names(tmp):
    return named_idx_source(tmp / "download")


# -- the harness --------------------------------------------------------------------------------

def tree(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """path -> content hash (or link target) of everything under ``folder``, links not followed."""
    found = {}
    for top, folders, files in os.walk(folder, followlinks=False):
        if skip is not None and Path(top) == skip.parent:
            folders[:] = [name for name in folders if Path(top) / name != skip]
        for name in folders + files:
            path = Path(top) / name
            relative = str(path.relative_to(folder))
            if path.is_symlink():
                found[relative] = "-> " + os.readlink(path)
            elif path.is_file():
                found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[relative] = "dir"
    return found


def state(root: Path, *outside: Path) -> dict:
    """What no refused import may change: data/, data.dvc, the registry, and the folders around
    the project (the sources included: an import never writes into them either)."""
    return {"data": tree(root / "data"), "pointer": (root / "data.dvc").read_bytes(),
            "registry": tree(root / "mlflow") if (root / "mlflow").exists() else {},
            "outside": {str(folder): tree(folder, skip=root) for folder in outside}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One project for the corpus, with data for every task the corpus imports into."""
    base = tmp_path_factory.mktemp("corpus")
    root = make_project(base / "project", datasets=("classification", "sentiment-ja", "generation", "anomaly"))
    with using_project(root):
        importer.import_dataset("sentiment", acl(base / "first-aclImdb"), root)
        yield root


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 45
    assert {c.outcome for c in CASES.values()} == {REFUSED, CONVERTED, JUNK, ACCEPTED}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_import(name, project, tmp_path):
    bad = CASES[name]
    source = bad.build(tmp_path)
    # The project's own folder and this case's tmp_path (the source and where a label like
    # ../../x would land); not every other test's tmp folders, whose hashing would dominate.
    outside = (project.parent, tmp_path)
    before = state(project, *outside)
    code, output = run_cli("data", "import", bad.task, source)
    flat = " ".join(output.split())  # the console folds long lines
    assert_one_clear_message(flat, *(" ".join(n.split()) for n in bad.names))
    after = state(project, *outside)
    assert after["outside"] == before["outside"], "an import wrote outside the project"
    assert after["registry"] == before["registry"], "an import touched the registry"
    assert not list((project / importer.STAGING).iterdir()), "the staging folder was left behind"
    if bad.outcome == REFUSED:
        assert code != 0, output
        assert output.count("zooflow: ") == 1, output
        assert after["pointer"] == before["pointer"], "data.dvc changed on a refusal"
        assert after["data"] == before["data"], "data/ changed on a refusal"
    else:
        assert code == 0, output
        assert "data version: " in output and after["pointer"] != before["pointer"]
        assert store.is_clean(project)


def test_an_import_into_one_mnist_task_leaves_the_other_task_as_it_was(project, tmp_path):
    """generation and anomaly have a folder each: importing anomaly's data replaces anomaly's only."""
    before = tree(project / "data" / "generation")
    code, output = run_cli("data", "import", "anomaly", named_idx_source(tmp_path / "download"))
    assert code == 0, output
    assert tree(project / "data" / "generation") == before
    assert (project / "data" / "anomaly" / "classes.txt").read_text().splitlines() == FASHION
    assert mnist.class_names(project / "data" / "generation") == [str(d) for d in range(10)]
    assert store.is_clean(project)


def test_an_interrupted_import_puts_everything_back(project, tmp_path, monkeypatch):
    """Ctrl-C after `dvc add` has rewritten data.dvc, before the push: the old folder and the
    old data.dvc come back byte for byte."""
    before = state(project, project.parent)
    real_repo = store._repo

    def add_then_interrupt(root):
        with real_repo(root) as repo:
            repo.add(str(Path(root) / store.DATA_DIR))
        assert (Path(root) / store.POINTER).read_bytes() != before["pointer"]  # the interrupt comes late
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "commit", add_then_interrupt)
    code, output = run_cli("data", "import", "classification", images(tmp_path / "src"))
    assert code == 130 and "Traceback" not in output
    after = state(project, project.parent)
    assert after["pointer"] == before["pointer"] and after["data"] == before["data"]
    assert not list((project / importer.STAGING).iterdir())
    assert store.is_clean(project)


def test_an_import_is_refused_while_data_has_unrecorded_edits(project, tmp_path):
    edited = project / "data" / "classification" / "README.md"
    original = edited.read_bytes() if edited.exists() else None
    edited.write_text("edited by hand")
    try:
        code, output = run_cli("data", "import", "classification", images(tmp_path / "src"))
        assert code != 0
        assert_one_clear_message(" ".join(output.split()), "differs from data.dvc", "zooflow data commit")
        assert edited.read_text() == "edited by hand"
    finally:
        if original is None:
            edited.unlink()
        else:
            edited.write_bytes(original)
    assert store.is_clean(project)
