"""Text that other software wrote, made safe to show (issue 15 item 3; RULES.md §1 "guaranteed
sender identity").

- Bidirectional control characters (U+202A–U+202E embeddings and overrides, U+2066–U+2069
  isolates) can make `facture‮fdp.exe` read as `facture.pdf` or reverse a name: they are taken
  out of every subject, display name and file name we show.
- A display name that looks like an address (`"chef@ch-troispics.mssante.fr"
  <attaquant@…>`, a comment `x@y(<chef@…>`, a full-width `＠`) would pass for someone else: such
  a name is dropped, so the real address is what the reader sees.

The one home of both rules: the parser applies them to what it stores (`mailboxes.mime`), and
the pages that show a sender go through `sender_label` / `display_name`.
"""

from __future__ import annotations

import re
import unicodedata

BIDI_CONTROLS_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")


def visible_text(value) -> str:
    """`value` without bidirectional control characters."""
    return BIDI_CONTROLS_RE.sub("", str(value or ""))


def looks_like_address(name: str) -> bool:
    folded = unicodedata.normalize("NFKC", name or "")
    return "@" in folded or "<" in folded or ">" in folded


def display_name(name) -> str:
    """A display name fit to show next to (or instead of) its address; "" when it has none, or
    when it looks like an address and would hide the real one."""
    name = " ".join(visible_text(name).split())
    return "" if looks_like_address(name) else name


def sender_label(name, address: str) -> str:
    """What a list shows for a sender: its display name when it is a safe one, else the address."""
    return display_name(name) or (address or "")
