"""Kinetics-400's class names, from torchvision's metadata (``R3D_18_Weights.KINETICS400_V1``),
so that a Kinetics-style folder keeps the label order a network trained on Kinetics predicts in.

A network's output ``i`` is Kinetics class ``i``. Ten of the 400 names hold characters that are
not safe names here (``hurling (sport)``, ``massaging person's head``): they become folder
names, metric keys and card text, so they are spelled without them (``hurling sport``). Sorting
those spellings would move them (``skiing (not slalom ...)`` sorts before ``skiing crosscountry``,
``skiing not slalom ...`` after it), so the order always comes from the metadata, never from a
sort. Folders named as downloaders write them (``air drumming``, ``air_drumming``,
``hurling_(sport)``, ``hurling_sport``) all match, by letters and digits alone.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1)
def categories() -> tuple[str, ...]:
    """The 400 Kinetics class names in label order, as torchvision's metadata has them."""
    from torchvision.models.video import R3D_18_Weights

    return tuple(R3D_18_Weights.KINETICS400_V1.meta["categories"])


def safe_spelling(name: str) -> str:
    """``name`` without the characters a safe name may not hold (``(``, ``)``, ``'``), spaces
    collapsed: ``massaging person's head`` -> ``massaging persons head``."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w .-]", "", name)).strip()


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@lru_cache(maxsize=1)
def _index() -> dict[str, int]:
    return {_key(name): number for number, name in enumerate(categories())}


def kinetics_name(folder: str) -> str | None:
    """The safe spelling of the Kinetics-400 class a folder is named after, or None."""
    number = _index().get(_key(folder))
    return None if number is None else safe_spelling(categories()[number])


def kinetics_order(classes: list[str]) -> list[str] | None:
    """``classes`` in Kinetics-400 label order when every one is a Kinetics-400 class (as
    :func:`kinetics_name` spells it), else None."""
    index = _index()
    if not classes or any(_key(name) not in index for name in classes):
        return None
    return sorted(classes, key=lambda name: index[_key(name)])
