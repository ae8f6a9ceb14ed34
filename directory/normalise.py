"""Folding text for search: "LEFÈVRE", "Lefèvre" and "lefevre" are the same key.

The directory's text is folded once, at import, and stored: the name as a key for prefix search,
the rest flattened for "contains" search; the user's typing is folded the same way at search
time. PostgreSQL's import folds in SQL (`directory.staging.fold_sql`, `unaccent`), for speed;
these functions are the reference it follows, and fold everything else (SQLite, hosted boxes,
queries). tests/directory checks that the two agree.
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
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.translate(_SPECIAL))).lower()


def fold(text: str) -> str:
    """`flatten`, then words of letters and digits separated by one space (SQL: `fold_sql`)."""
    return _NOT_WORD.sub(" ", flatten(text)).strip()


def words(text: str) -> list[str]:
    return fold(text).split()
