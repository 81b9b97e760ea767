"""Metric keys from user-supplied labels (class names, digit labels).

MLflow accepts metric keys made of Unicode word characters and ``_ - . space : /``, and refuses
keys that a path normalisation would change. A label comes from the user's data (a folder name,
an XML tag), so it may hold anything; these functions turn it into a key MLflow accepts, keep
it readable where they can, and keep distinct labels on distinct keys.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Word characters (Unicode), dot, dash and space stay. "/" and ":" are allowed by MLflow too,
# but "/" makes a key a path (MLflow then refuses "a/../b" or "a//b" and its UI nests the key)
# and ":" is refused on Windows, so both become "_" like every other character.
_NOT_ALLOWED = re.compile(r"[^\w.\- ]")
# Keys longer than 250 characters are refused; leave room for a prefix such as "precision_".
MAX_LABEL_LENGTH = 200


def metric_key(label: object) -> str:
    """``label`` as a valid MLflow metric key (on its own or after a prefix): every character
    outside word characters, ``.``, ``-`` and space becomes ``_``. Not injective; use
    :func:`metric_key_map` for a set of labels."""
    # NFC first, so an accented letter written as letter + combining mark (a word character
    # followed by a non-word one) stays one letter instead of losing its accent to "_".
    text = unicodedata.normalize("NFC", str(label))
    key = _NOT_ALLOWED.sub("_", text)[:MAX_LABEL_LENGTH]
    # MLflow refuses keys that start with ".." (and "." alone), as a path they leave the folder.
    key = re.sub(r"^\.+", lambda dots: "_" * len(dots.group()), key)
    return key or "_"


def metric_key_map(labels: Iterable[object]) -> dict[object, str]:
    """Every distinct label -> its metric key, no two labels on the same key.

    A label that is already a valid key keeps it. The others take :func:`metric_key`, and when
    that is taken a ``_2``, ``_3``, ... suffix; they are numbered in sorted order of their text,
    so the map does not depend on the order the labels came in.
    """
    unique = list(dict.fromkeys(labels))
    taken: set[str] = set()
    keys: dict[object, str] = {}
    for label in unique:  # valid labels first: they must never be renamed by another's suffix
        if metric_key(label) == str(label) and str(label) not in taken:  # 1 and "1": only the first
            keys[label] = str(label)
            taken.add(str(label))
    for label in sorted((label for label in unique if label not in keys), key=str):
        base = candidate = metric_key(label)
        number = 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        keys[label] = candidate
        taken.add(candidate)
    return {label: keys[label] for label in unique}
