"""Text forms: what members typed minus invisible characters, and the skeleton rules match."""

from __future__ import annotations

import unicodedata

import regex
from confusable_homoglyphs import confusables

_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")


def _fold_table() -> dict[int, str]:
    """Non-ASCII characters → the ASCII letter or digit they are confusable with (Unicode's
    confusables.txt, as shipped by confusable-homoglyphs), in the same case where possible."""
    table: dict[int, str] = {}
    for char, entries in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = [e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii()]
        targets = [t for t in targets if t.isalnum()]
        if targets:
            upper = char.isupper()  # keep the case: Greek Ν → N, ν → v
            table[ord(char)] = min(targets, key=lambda t: (t.isupper() != upper, t.isdigit(), t))
    return table


_FOLD = _fold_table()


def strip_invisible(text: str) -> str:
    """Drop default-ignorable code points (joiners, variation selectors, tags...)."""
    return _IGNORABLE.sub("", text)


def skeleton(text: str, *, casefold: bool = True) -> str:
    """The form blocklists match on: NFKC, invisible characters dropped, look-alikes folded
    to ASCII (before case folding, which would turn Greek Ν into ν, a look-alike of v), then
    case folded: `ｎｕ<U+034F>dе` (Cyrillic е) reads as `nude`."""
    text = strip_invisible(unicodedata.normalize("NFKC", text)).translate(_FOLD)
    return text.casefold().translate(_FOLD) if casefold else text
