"""The message store's files (DESIGN.md "One message store"): raw messages and attachments in
Django storage (a local folder by default, S3-compatible object storage when configured), each
written once under the SHA-256 of its bytes. Nothing here is served by URL: reads go through the
access-checked views (`mailboxes/views.py`) or the relay.
"""

from __future__ import annotations

import hashlib
import os

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def raw_name(sha256: str) -> str:
    return f"raw/{sha256[:2]}/{sha256}.eml"


def attachment_name(sha256: str) -> str:
    return f"att/{sha256[:2]}/{sha256}"


def store_blob(name: str, data: bytes) -> str:
    """Write `data` under its content-hash `name` unless it is already there, whole; return the
    name actually used, once the bytes are on stable storage (issue 17: the delivery path commits,
    and the gateway answers 250, only after this returns). A file of another size under that name
    (a write cut short by a crash, or still in progress in another process) is never trusted: the
    bytes are written again, and the storage picks a free name (local folder) or replaces the
    object (S3). `ContentFile` wraps the bytes without copying them."""
    try:
        if default_storage.size(name) == len(data):
            make_durable(name)  # written by another delivery, perhaps not yet flushed
            return name
    except FileNotFoundError:
        pass
    except Exception:  # noqa: S110 - absent on S3 (404...): written below
        pass
    new_directory = not directory_exists(name)
    saved = default_storage.save(name, ContentFile(data))
    make_durable(saved, new_directory=new_directory)
    return saved


def local_path(name: str) -> str | None:
    """The file's path on the local-folder backend; None on object storage (S3), which is
    durable when its PUT returns and has no local path."""
    try:
        return default_storage.path(name)
    except NotImplementedError:
        return None


def directory_exists(name: str) -> bool:
    path = local_path(name)
    return path is None or os.path.isdir(os.path.dirname(path))


def make_durable(name: str, *, new_directory: bool = False) -> None:
    """fsync a stored file and its directory on the local-folder backend, so that a power loss
    after this keeps the file, whole, under its name. When the write created the directory
    (`raw/ab/`, 256 of them), the directories above it up to the storage root are synced too."""
    path = local_path(name)
    if path is None:
        return
    fsync_path(path)
    directory = os.path.dirname(path)
    fsync_path(directory)
    if new_directory:
        root = os.path.normpath(default_storage.path(""))
        while len(directory) > len(root):
            directory = os.path.dirname(directory)
            fsync_path(directory)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
