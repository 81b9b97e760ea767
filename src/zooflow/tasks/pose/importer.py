"""Import a COCO keypoints dataset into chapter 4's task folder: only what pose uses, by the rules of
``zooflow.data.safety`` (no links, confined paths, litter skipped and reported).

A COCO 2017 download holds ``annotations/`` with the captions, instances and person keypoints
JSONs of both splits, and ``train2017/`` (118,287 images) and ``val2017/`` (5,000). The import
accepts that naming (``person_keypoints_{train,val}2017.json``, ``{train,val}2017/``) or the task
folder's own (``person_keypoints_{train,val}.json``, ``train/``, ``val/``; see
:mod:`zooflow.tasks.pose.coco`). It copies the two keypoint JSONs byte for byte under the task's
names, the images they list into ``train/`` and ``val/`` byte for byte, and top-level
README/LICENSE files, and says in ``Imported.notes`` what it left out. It does not judge the
content: an image that is listed but missing, a keypoint off its image, an orphan annotation, are
copied as they are (or left absent) for validation to name them all at once. What it does refuse,
by name: a symlink anywhere in the source, a ``file_name`` that is not a plain name inside its
split folder, and a JSON it cannot read (it needs the list of images to know what to copy).
"""

from __future__ import annotations

from pathlib import Path

from zooflow.data import safety
from zooflow.data.safety import ImportRejected, Imported
from zooflow.tasks.pose.coco import ANNOTATIONS, SPLITS, annotation_name, plain_name_problem, read_json

NAMINGS = (("2017", "COCO 2017"), ("", "zooflow"))  # (suffix of the JSONs and image folders, in messages)




def _naming(source: Path) -> str:
    """The suffix of the source's naming ("2017" or ""), from its annotation files."""
    for suffix, _ in NAMINGS:
        if all((source / ANNOTATIONS / annotation_name(split + suffix)).is_file() for split in SPLITS):
            return suffix
    expected = " or ".join(f"{ANNOTATIONS}/{annotation_name('{train,val}' + suffix)} ({what})"
                           for suffix, what in NAMINGS)
    raise ImportRejected(f"{source}: is not a COCO keypoints dataset: expected {expected}, with the images in "
                         "train2017/ and val2017/ (or train/ and val/)")


def _copy_split(source: Path, target: Path, split: str, suffix: str) -> list[str]:
    """Copy one split's JSON (renamed) and the images it lists; notes on what was left out."""
    json_path = source / ANNOTATIONS / annotation_name(split + suffix)
    dataset = read_json(json_path)
    folder = source / (split + suffix)
    listing = safety.list_folder(folder, source) if folder.is_dir() else safety.Listing(folder)
    present = set(listing.files)
    names: list[str] = []
    for index, entry in enumerate(dataset["images"]):
        name = entry.get("file_name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue  # an entry without a file name: validation names it (fields_ok)
        if problem := plain_name_problem(name):
            raise ImportRejected(f"{json_path}: images[{index}] (id {entry.get('id')!r}): {problem}")
        names.append(name)
    safety.copy_file(json_path, target, target / ANNOTATIONS / annotation_name(split))
    copied, absent = set(), []
    for name in dict.fromkeys(names):
        if name in present:
            safety.copy_file(folder / name, target, safety.inside(target, target / split / name))
            copied.add(name)
        else:
            absent.append(name)
    notes = []
    if not folder.is_dir():
        notes.append(f"{source.name}/ has no {split + suffix}/ folder: none of the {len(names)} images listed in "
                     f"{json_path.name} was copied; validation names them")
    elif absent:
        notes.append(f"{len(absent)} image(s) listed in {json_path.name} are not in {split + suffix}/ "
                     f"({safety.some_names(absent)}); validation names them")
    extra = sorted(present - copied) + [f"{name}/" for name in listing.folders]
    if extra:
        notes.append(f"left out {len(extra)} entr{'ies' if len(extra) > 1 else 'y'} in {split + suffix}/ that "
                     f"{json_path.name} does not list ({safety.some_names(extra)})")
    return notes


def import_coco_keypoints(source: Path, target: Path) -> Imported:
    """Copy the person keypoints of a COCO dataset (``source``: a folder with ``annotations/`` and
    the image folders, COCO 2017's names or the task's) into ``target``, laid out as
    :mod:`zooflow.tasks.pose.coco` describes: ``annotations/person_keypoints_{train,val}.json``
    and the listed images in ``train/`` and ``val/``, all byte for byte. A symlink anywhere in the
    source and an unsafe ``file_name`` are refused by name; litter is skipped and reported; what is
    left out (other annotation files, unlisted images, other folders) is said in the notes. The
    class set is ``("person",)``."""
    source = safety.resolve_source(source)
    if not source.is_dir():
        raise ImportRejected(f"{source}: is not a folder; a COCO keypoints dataset is a folder with {ANNOTATIONS}/ "
                             "and its image folders")
    target = safety.fresh_target(target)
    skipped = safety.walk_refusing_links(source, source)  # a link anywhere in what the user named is refused, used or not
    suffix = _naming(source)
    notes: list[str] = []
    for split in SPLITS:
        notes += _copy_split(source, target, split, suffix)
    wanted = {annotation_name(split + suffix) for split in SPLITS}
    other_json = sorted(set(safety.list_folder(source / ANNOTATIONS).files) - wanted)
    other_json += [f"{name}/" for name in safety.list_folder(source / ANNOTATIONS).folders]
    if other_json:
        notes.append(f"left out {safety.some_names(other_json)} in {ANNOTATIONS}/ (pose uses the person keypoints files)")
    top = safety.list_folder(source)
    used = {ANNOTATIONS, *(split + suffix for split in SPLITS)}
    beside = [f"{name}/" for name in top.folders if name not in used]
    beside += [name for name in top.files if not safety.is_document(name)]
    if beside:
        notes.append(f"left out {safety.some_names(beside)} (not used by pose)")
    for name in top.files:
        if safety.is_document(name):
            safety.copy_file(source / name, target, target / name)
    if suffix:
        notes.append(f"renamed {', '.join(annotation_name(split + suffix) for split in SPLITS)} and "
                     f"{', '.join(split + suffix + '/' for split in SPLITS)} to the task's names "
                     f"({', '.join(annotation_name(split) for split in SPLITS)}, train/, val/)")
    return Imported(classes=("person",), skipped=tuple(skipped), notes=tuple(notes))
