"""How much of a message body a page shows (patient message and exchange pages, the webmail's
reading pane, its HTML frame and its print view).

A body may be as large as a message (25 MB): shown whole, it makes a page a phone cannot open.
Every page shows at most `settings.BODY_DISPLAY_MAX_CHARS` characters of the text body, and of
the HTML body after sanitising, then says that the message is shown in part and links to the
whole message (`mailboxes:message_eml`, fetched through `mailboxes.access`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from mailboxes.mime import sanitise_html

# A text cut goes back to the last line break within this many characters, so that the last
# line shown is whole.
LINE_BACKTRACK_CHARS = 2000


@dataclass(frozen=True)
class ShownBody:
    text: str
    html: str  # sanitised with nh3
    cut: bool


def _text_prefix(text: str, limit: int) -> str:
    end = text.rfind("\n", max(0, limit - LINE_BACKTRACK_CHARS), limit)
    return text[: end if end > 0 else limit]


def shown_body(message) -> ShownBody:
    """The part of `message`'s bodies a page shows, and whether it was cut."""
    limit = settings.BODY_DISPLAY_MAX_CHARS
    text = message.text_body or ""
    html = message.html_body or ""
    text_cut = len(text) > limit
    html_cut = len(html) > limit
    return ShownBody(
        text=_text_prefix(text, limit) if text_cut else text,
        # A prefix of clean HTML may end inside a tag: sanitising it again closes what is open.
        html=sanitise_html(html[:limit]) if html_cut else html,
        cut=text_cut or html_cut,
    )
