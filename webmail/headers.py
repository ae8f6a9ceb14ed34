"""The message headers shown on demand in the reading pane, read from the raw bytes as received."""

from __future__ import annotations

import logging

from mailboxes.mime import decode_text

logger = logging.getLogger(__name__)
MAX_HEADER_BYTES = 256 * 1024


def raw_headers(message) -> list[tuple[str, str]]:
    try:
        with message.raw.open("rb") as handle:
            head = handle.read(MAX_HEADER_BYTES)
    except (OSError, ValueError):
        logger.warning("raw bytes unreadable for message %s", message.pk)
        return []
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end != -1:
            head = head[:end]
            break
    fields: list[tuple[str, str]] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        text = line.decode("utf-8", errors="replace")
        if text[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + text.strip())
        elif ":" in text:
            name, value = text.split(":", 1)
            fields.append((name.strip(), value.strip()))
    return [(name, decode_text(value)) for name, value in fields]
