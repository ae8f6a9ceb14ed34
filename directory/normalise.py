"""Folding text for search: "LEFÈVRE", "Lefèvre" and "lefevre" are the same key.

The directory's text is folded once, at import, and stored: the name as a key for prefix search,
the rest flattened for "contains" search; the user's typing is folded the same way at search
time. PostgreSQL's import folds in SQL (`directory.staging.fold_sql`, `unaccent`) where it
builds rows from staged exercises (a re-import's changes), for speed; these functions are the
reference it follows, and fold everything else (a first import's rows as they are staged, SQLite,
hosted boxes, queries). tests/directory checks that the two agree.
"""

from __future__ import annotations

import re
import unicodedata

# Letters NFKD does not decompose, and apostrophes, which vanish ("d'Artagnan" = "dartagnan").
# Kept in step with PostgreSQL's `unaccent` (directory_fold() of migration 0002, the fold of the
# import's fast path); tests/directory compares the two on awkward names.
_SPECIAL = str.maketrans(
    {
        "œ": "oe",
        "Œ": "oe",
        "æ": "ae",
        "Æ": "ae",
        "ß": "ss",
        "ø": "o",
        "Ø": "o",
        "đ": "d",
        "Đ": "d",
        "ł": "l",
        "Ł": "l",
        "ı": "i",
        "'": "",
        "’": "",
        "`": "",
    }
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_COMBINING = re.compile("[\u0300-\u036f]")


def flatten(text: str) -> str:
    """Lower case, no accents, no apostrophes; the rest as it is (SQL: `lowered_sql`)."""
    if not text:
        return ""
    if text.isascii():
        return text.replace("'", "").replace("`", "").lower()
    if _LONG_WAY.search(text) is None:  # ASCII and accented Latin letters (most French text)
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        return text.replace("'", "").replace("`", "").lower()
    return _flattened(text)


def _flattened(text: str) -> str:
    """`flatten` of any text: the definition."""
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.translate(_SPECIAL))).lower()


def _short_way(character: str) -> bool:
    """Whether NFKD then dropping what is not ASCII flattens `character` (and, one character
    after another, any text of such characters and ASCII: NFKD decomposes each character
    alone, and what it drops are the combining marks `flatten` drops too)."""
    ascii_only = unicodedata.normalize("NFKD", character).encode("ascii", "ignore").decode("ascii")
    return _flattened(character) == ascii_only.replace("'", "").replace("`", "").lower()


# Text with none of the other characters takes `flatten`'s short way: one scan finds them.
# The short way's characters are found by the definition itself, among Latin letters and
# punctuation (é, ç, ï, ’, the no-break spaces…; not œ, ß, ø, which NFKD does not decompose).
_LONG_WAY = re.compile(
    "[^\\x00-\\x7f"
    + "".join(
        re.escape(c)
        for c in map(chr, [*range(0x80, 0x250), *range(0x300, 0x370), *range(0x2000, 0x2070)])
        if _short_way(c)
    )
    + "]"
)


def fold(text: str) -> str:
    """`flatten`, then words of letters and digits separated by one space (SQL: `fold_sql`)."""
    return words_of(flatten(text))


def words_of(flat: str) -> str:
    """The second half of `fold`, of text `flatten` made: words of letters and digits
    separated by one space. (Most names are ASCII letters and spaces already: no regex.)"""
    if flat.isascii() and flat.replace(" ", "").isalnum():
        return " ".join(flat.split())
    return _NOT_WORD.sub(" ", flat).strip()


class _Flattened(dict):
    """`flatten` of each text asked for (`FLAT[text]`), remembered: for a file's cells, which
    repeat (professions, specialities, first names, street types and names, towns,
    structures), flattened one by one and joined by the caller. `flatten` works character by
    character (a translation, NFKD, removing combining marks, lower case), and a space between
    two cells stops what could reach across them (NFKD's reordering of combining marks, the
    final sigma of lower case), so the cells flattened then joined by " " or ", " are the
    flattened join (tests/directory checks it). Emptied when full: bounded memory."""

    size = 100_000

    def __missing__(self, text: str) -> str:
        if len(self) >= self.size:
            self.clear()
        flat = self[text] = flatten(text)
        return flat


FLAT = _Flattened()
