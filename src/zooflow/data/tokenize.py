"""Tokenisers for the sentiment task: the book's English preprocessing and three Japanese
morphological analysers (Janome, SudachiPy, fugashi + unidic-lite), chosen in the config."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache

SPECIALS = ("<pad>", "<unk>", "<cls>", "<eos>")
PAD, UNK, CLS, EOS = range(4)

_KEEP = ".,"
_PUNCTUATION = re.compile("[" + re.escape("".join(c for c in string.punctuation if c not in _KEEP)) + "]")


def book_english(text: str) -> list[str]:
    """The book's chapter-7 preprocessing: drop ``<br />``, every punctuation mark except . and ,
    becomes a space, . and , become tokens of their own, lower case, split on whitespace."""
    text = text.replace("<br />", " ")
    text = _PUNCTUATION.sub(" ", text)
    text = text.replace(".", " . ").replace(",", " , ")
    return text.lower().split()


@lru_cache(maxsize=1)
def _janome():
    from janome.tokenizer import Tokenizer

    return Tokenizer(wakati=True)


@lru_cache(maxsize=1)
def _sudachi():
    from sudachipy import Dictionary

    return Dictionary(dict="core").create()


@lru_cache(maxsize=1)
def _fugashi():
    import fugashi

    return fugashi.Tagger()  # unidic-lite's dictionary


def _japanese(split: Callable[[str], Iterable[str]]) -> Callable[[str], list[str]]:
    def tokenize(text: str) -> list[str]:
        # NFKC folds full-width Latin and half-width kana; Latin words are lower-cased.
        normal = unicodedata.normalize("NFKC", text).lower()
        return [token for token in split(normal) if token.strip()]
    return tokenize


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "book": book_english,
    "janome": _japanese(lambda text: _janome().tokenize(text)),
    "sudachi": _japanese(lambda text: [m.surface() for m in _sudachi().tokenize(text)]),
    "fugashi": _japanese(lambda text: [word.surface for word in _fugashi()(text)]),
}


# The packages each tokenizer needs where a model is served (its dictionary included).
TOKENIZER_PACKAGES: dict[str, tuple[str, ...]] = {"book": (), "janome": ("janome",),
                                                  "sudachi": ("sudachipy", "sudachidict-core"),
                                                  "fugashi": ("fugashi", "unidic-lite")}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer '{name}'; choose one of {', '.join(TOKENIZERS)}")
    return TOKENIZERS[name]


def build_vocab(texts: Iterable[str], tokenize: Callable[[str], list[str]], min_freq: int) -> list[str]:
    """The specials, then every token seen at least ``min_freq`` times (most frequent first)."""
    counts = Counter(token for text in texts for token in tokenize(text))
    words = sorted((w for w, n in counts.items() if n >= min_freq and w not in SPECIALS), key=lambda w: (-counts[w], w))
    return [*SPECIALS, *words]


def encode(text: str, tokenize: Callable[[str], list[str]], index: dict[str, int], length: int) -> list[int]:
    """``<cls>`` tokens ``<eos>``, cut or padded to ``length`` ids."""
    ids = [CLS, *(index.get(token, UNK) for token in tokenize(text))][: length - 1] + [EOS]
    return ids + [PAD] * (length - len(ids))
