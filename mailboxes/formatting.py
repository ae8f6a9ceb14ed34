"""Formatted writing (issue 16 item 18): a message written with bold, italics, lists and links
leaves as `multipart/alternative` — an HTML part cleaned on the server exactly like received HTML
(`mailboxes.mime.sanitise_html`, nh3), and a plain-text part derived from that same cleaned HTML,
so the two always say the same thing and a text-only reader loses no word, item or link.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from mailboxes.mime import sanitise_html

BLOCKS = {"p", "div", "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "tr"}
SKIPPED = {"script", "style", "head", "title"}
MAX_HTML_CHARS = 2_000_000


class _TextWriter(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.lists: list[list] = []  # [kind, counter] per open list
        self.links: list[str | None] = []
        self.link_text: list[str] = []
        self.skip = 0
        self.quote = 0

    # Lines ------------------------------------------------------------------------------------
    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith("\n")

    def _newline(self) -> None:
        if not self._at_line_start():
            self.out.append("\n")

    def _write(self, text: str) -> None:
        if self._at_line_start() and self.quote:
            self.out.append("> " * self.quote)
        self.out.append(text)

    # Parser callbacks -------------------------------------------------------------------------
    def handle_starttag(self, tag, attrs):
        if tag in SKIPPED:
            self.skip += 1
            return
        if tag == "br":
            self.out.append("\n")
        elif tag in BLOCKS:
            self._newline()
            if tag in ("ul", "ol"):
                self.lists.append([tag, 0])
            elif tag == "li":
                kind, count = self.lists[-1] if self.lists else ("ul", 0)
                if self.lists:
                    self.lists[-1][1] = count + 1
                indent = "  " * max(len(self.lists) - 1, 0)
                self._write(f"{indent}{count + 1}. " if kind == "ol" else f"{indent}- ")
            elif tag == "blockquote":
                self.quote += 1
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))
            self.link_text.append("")

    def handle_endtag(self, tag):
        if tag in SKIPPED:
            self.skip = max(self.skip - 1, 0)
            return
        if tag == "a" and self.links:
            href, text = self.links.pop(), self.link_text.pop().strip()
            if href and href not in (text, f"mailto:{text}"):
                self._write(f" <{href}>")
        elif tag in BLOCKS:
            self._newline()
            if tag in ("ul", "ol") and self.lists:
                self.lists.pop()
            elif tag == "blockquote":
                self.quote = max(self.quote - 1, 0)

    def handle_data(self, data):
        if self.skip:
            return
        text = re.sub(r"[ \t\r\n\f]+", " ", data.replace("\xa0", " "))
        if self._at_line_start():
            text = text.lstrip()
        if not text:
            return
        if self.link_text:
            self.link_text[-1] += text
        self._write(text)


def text_from_html(html: str) -> str:
    """A readable plain-text version of (cleaned) HTML: paragraphs and line breaks kept, list
    items as "- " or "1. ", quotes as "> ", links as "text <url>"."""
    writer = _TextWriter()
    writer.feed(html or "")
    writer.close()
    lines = [line.rstrip() for line in "".join(writer.out).split("\n")]
    # The signature separator keeps its trailing space ("-- ", RFC 3676 §4.3): readers hide what follows.
    lines = ["-- " if line == "--" else line for line in lines]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


def has_formatting_or_text(html: str) -> bool:
    return bool(text_from_html(html).strip()) or "<a " in html or "<li" in html


def composed_bodies(text: str, html: str | None) -> tuple[str, str | None]:
    """(text part, HTML part or None) of a message from the editor. With HTML, the HTML is cleaned
    like received HTML and the text part is derived from it; without, the text is sent alone."""
    html = (html or "")[:MAX_HTML_CHARS]
    if not html.strip():
        return text or "", None
    cleaned = sanitise_html(html).strip()
    if not cleaned or not has_formatting_or_text(cleaned):
        return text or "", None
    return text_from_html(cleaned), cleaned
