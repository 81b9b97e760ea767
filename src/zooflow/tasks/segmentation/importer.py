"""Import a Pascal VOC segmentation dataset into a task folder: only what segmentation uses, by
the rules of ``zooflow.data.safety`` (no links, confined paths, litter skipped and reported).

A real VOC2012 download holds far more than the segmentation splits (detection annotations,
object masks, action and layout lists, 17,125 images of which the train/val segmentation lists
use 2,913). The import copies the listed images and class masks byte for byte and the two split
lists of ``ImageSets/Segmentation``, writes ``classes.txt``, and says in ``Imported.notes`` what
it left out (``SegmentationObject/``, ``Annotations/``, the other lists and images). It does not
judge the content: a listed id whose image or mask is missing, or a mask that is not a palette
PNG of class ids, is copied as it is (or left absent), so that validation names every problem of
the dataset at once. The walk is every VOC task's (``zooflow.data.voc_import``).
"""

from __future__ import annotations

from pathlib import Path

from zooflow.data.safety import Imported
from zooflow.data.voc_import import import_voc_layout
from zooflow.tasks.segmentation.voc import LAYOUT


def import_voc_segmentation(source: Path, target: Path) -> Imported:
    """Copy the segmentation part of a Pascal VOC dataset (``source`` = a ``VOCdevkit`` folder
    with one ``VOC<year>`` inside, that ``VOC<year>`` folder itself, or the folder a VOC tar
    extracts to) into ``target/VOCdevkit/VOC<year>/``: ``ImageSets/Segmentation/train.txt`` and
    ``val.txt``, the listed ``JPEGImages/`` and ``SegmentationClass/`` files, and ``classes.txt``
    (the source's, checked, else VOC's 21 with background first). Links anywhere, unsafe ids and
    unsafe class names are refused by name; litter is skipped and reported; everything else left
    out is said in the notes."""
    return import_voc_layout(source, target, LAYOUT)
