"""The message store's files (DESIGN.md "One message store"): raw messages and attachments in
Django storage (a local folder by default, S3-compatible object storage when configured), each
written once under the SHA-256 of its bytes. Nothing here is served by URL: reads go through the
access-checked views (`mailboxes/views.py`) or the relay.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def raw_name(sha256: str) -> str:
    return f"raw/{sha256[:2]}/{sha256}.eml"


def attachment_name(sha256: str) -> str:
    return f"att/{sha256[:2]}/{sha256}"


def store_blob(name: str, data: bytes) -> str:
    """Write `data` under its content-hash `name` unless it is already there, whole; return the
    name actually used. A file of another size under that name (a write cut short by a crash, or
    still in progress in another process) is never trusted: the bytes are written again, and the
    storage picks a free name (local folder) or replaces the object (S3). `ContentFile` wraps the
    bytes without copying them."""
    try:
        if default_storage.size(name) == len(data):
            return name
    except Exception:  # noqa: S110 - absent (FileNotFoundError, S3 404...): written below
        pass
    return default_storage.save(name, ContentFile(data))


def store_raw(raw: bytes) -> tuple[str, str]:
    """(sha256, storage name) of a raw message, written once."""
    digest = hashlib.sha256(raw).hexdigest()
    return digest, store_blob(raw_name(digest), raw)


def store_attachment(data: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    return digest, store_blob(attachment_name(digest), data)


def open_raw(message):
    """A binary file object on the stored original bytes of `message` (caller closes it)."""
    return default_storage.open(message.raw.name, "rb")


def read_raw(message) -> bytes:
    with open_raw(message) as handle:
        return handle.read()
