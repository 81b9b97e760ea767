"""Import a Pascal VOC detection dataset into a task folder: only what detection uses, by the
rules of ``zooflow.data.safety`` (no links, confined paths, litter skipped and reported).

A real VOC2012 download holds far more than the detection splits (segmentation masks, action
and layout lists, per-class lists, 17,125 images of which the train/val detection lists use
11,540). The import copies the listed images and annotations byte for byte and the two split
lists, writes ``classes.txt``, and says in ``Imported.notes`` what it left out. It does not judge
the content: a listed id whose image or annotation is missing, an XML that does not parse or a
box outside its image is copied as it is (or left absent), so that validation names every
problem of the dataset at once. The walk is every VOC task's (``zooflow.data.voc_import``);
what is detection's own is where an image is found: the file its XML names.
"""

from __future__ import annotations

from pathlib import Path

from zooflow.data.safety import Imported
from zooflow.data.voc_import import import_voc_layout
from zooflow.errors import InputRejected
from zooflow.tasks.detection.voc import ANNOTATIONS, LAYOUT, find_image, parse_annotation


def _image_name(voc: Path, image_id: str, image_names: set[str]) -> str | None:
    """The image file of a listed id: the one its XML's ``<filename>`` names when that is the
    id's file, else ``<id>.jpg`` (or .jpeg, .png). The XML is only peeked at here: when it
    cannot be read, validation says why."""
    filename = ""
    annotation = voc / ANNOTATIONS / f"{image_id}.xml"
    if annotation.is_file():
        try:
            filename = parse_annotation(annotation).filename
        except InputRejected:
            pass
    return find_image(image_names, image_id, filename)


def import_voc(source: Path, target: Path) -> Imported:
    """Copy the detection part of a Pascal VOC dataset (``source`` = a ``VOCdevkit`` folder with
    one ``VOC<year>`` inside, that ``VOC<year>`` folder itself, or the folder a VOC tar extracts
    to) into ``target/VOCdevkit/VOC<year>/``: the two split lists, the listed images and
    annotations, and ``classes.txt`` (the source's, checked, else the 20 VOC classes). Links
    anywhere, unsafe ids and unsafe class names are refused by name; litter is skipped and
    reported; everything else left out is said in the notes."""
    return import_voc_layout(source, target, LAYOUT, _image_name)
