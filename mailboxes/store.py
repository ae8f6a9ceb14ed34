"""The message store's files (DESIGN.md "One message store"): raw messages and attachments in
Django storage (a local folder by default, S3-compatible object storage when configured), each
written once under the SHA-256 of its bytes. Nothing here is served by URL: reads go through the
access-checked views (`mailboxes/views.py`) or the relay.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage


def raw_name(sha256: str) -> str:
    return f"raw/{sha256[:2]}/{sha256}.eml"


def attachment_name(sha256: str) -> str:
    return f"att/{sha256[:2]}/{sha256}"


@dataclass
class Written:
    """A file written to the storage, not yet known to be on stable storage: `sync()` makes it so."""

    name: str
    new_directory: bool = False

    def sync(self) -> None:
        make_durable(self.name, new_directory=self.new_directory)


def write_blob(name: str, data: bytes, prefix: bytes = b"") -> Written:
    """Write `prefix + data` under its content-hash `name` unless it is already there, whole. A
    file of another size under that name (a write cut short by a crash, or still in progress in
    another process) is never trusted: the bytes are written again, and the storage picks a free
    name (local folder) or replaces the object (S3). The bytes are handed to the storage without
    a copy (`ContentFile`, or `PrefixedBytes` with a prefix). The caller syncs the result
    (`Written.sync`) before it relies on the file."""
    try:
        if default_storage.size(name) == len(prefix) + len(data):
            return Written(name)  # written by another delivery, perhaps not yet flushed: synced too
    except FileNotFoundError:
        pass
    except Exception:  # noqa: S110 - absent on S3 (404...): written below
        pass
    new_directory = not directory_exists(name)
    content = File(PrefixedBytes(prefix, data)) if prefix else ContentFile(data)
    if prefix:
        content.size = len(prefix) + len(data)
    return Written(default_storage.save(name, content), new_directory)


class PrefixedBytes(io.RawIOBase):
    """`prefix + data` as a read-only, seekable binary stream, never joined into one object: the
    gateway's trace lines in front of a received message of up to 25 MB (issue 17: the joined
    copy took the gateway's peak memory from 2.0x to 2.75x the message)."""

    def __init__(self, prefix: bytes, data: bytes):
        self.parts = (memoryview(prefix), memoryview(data))
        self.length = len(prefix) + len(data)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        written = 0
        start = self.position
        for part in self.parts:
            if written == len(target):
                break
            if start >= len(part):
                start -= len(part)
                continue
            piece = part[start : start + len(target) - written]
            target[written : written + len(piece)] = piece
            written += len(piece)
            start = 0
        self.position += written
        return written


def store_blob(name: str, data: bytes) -> str:
    """`write_blob`, then on stable storage before this returns; the name actually used."""
    written = write_blob(name, data)
    written.sync()
    return written.name


_sync_pool: ThreadPoolExecutor | None = None
_sync_pool_pid = 0


class AllSynced:
    """The fsyncs of one delivery's files, running concurrently: `result()` waits for them all
    and raises the first error."""

    def __init__(self, futures: list[Future]):
        self.futures = futures

    def result(self) -> None:
        for future in self.futures:
            future.result()


def sync_in_background(files: list[Written]) -> AllSynced:
    """fsync `files` and their directories in a small pool of threads (fsync releases the GIL),
    so that the delivery path writes its rows meanwhile; it waits for the result before its
    COMMIT (issue 17). The files are synced at once, not one after the other: on a journalled
    file system concurrent fsyncs share one journal commit, so a message with an attachment
    (two files) waits about as long as one without. Each file's directories follow it in the
    same job: the file's fsync has just committed the journal, so theirs cost little, and each
    job handed to a thread costs the delivery path a wake-up and a turn of the GIL (a job per
    path was 6 % of the gateway's CPU with a PDF attachment, bench/RESULTS.md issue 17)."""
    global _sync_pool, _sync_pool_pid
    if _sync_pool is None or _sync_pool_pid != os.getpid():  # a pool never crosses a fork
        _sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store-fsync")
        _sync_pool_pid = os.getpid()
    seen: set[str] = set()
    jobs = []
    for written in files:
        paths = [path for path in durable_paths(written.name, written.new_directory) if path not in seen]
        seen.update(paths)
        if paths:
            jobs.append(_sync_pool.submit(fsync_paths, paths))
    return AllSynced(jobs)


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
    after this keeps the file, whole, under its name."""
    for path in durable_paths(name, new_directory):
        fsync_path(path)


def durable_paths(name: str, new_directory: bool = False) -> list[str]:
    """What to fsync for a stored file to survive a power loss: the file and its directory, and
    when the write created the directory (`raw/ab/`, 256 of them), the directories above it up
    to the storage root. None on object storage (S3), durable when its PUT returns."""
    path = local_path(name)
    if path is None:
        return []
    directory = os.path.dirname(path)
    paths = [path, directory]
    if new_directory:
        root = os.path.normpath(default_storage.path(""))
        while len(directory) > len(root):
            directory = os.path.dirname(directory)
            paths.append(directory)
    return paths


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: list[str]) -> None:
    """fsync each of `paths`, in order (a file, then its directories)."""
    for path in paths:
        fsync_path(path)


def store_raw(raw: bytes) -> tuple[str, str]:
    """(sha256, storage name) of a raw message, written once."""
    digest = hashlib.sha256(raw).hexdigest()
    return digest, store_blob(raw_name(digest), raw)


def store_attachment(data: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    return digest, store_blob(attachment_name(digest), data)


def write_raw(raw: bytes, prefix: bytes = b"") -> tuple[str, Written]:
    """(sha256, the written file) of a raw message stored as `prefix + raw` (the gateway's trace
    lines, then the bytes received), to be synced by the caller."""
    digest = hashlib.sha256(prefix)
    digest.update(raw)
    sha256 = digest.hexdigest()
    return sha256, write_blob(raw_name(sha256), raw, prefix)


def write_attachment(data: bytes) -> tuple[str, Written]:
    digest = hashlib.sha256(data).hexdigest()
    return digest, write_blob(attachment_name(digest), data)


def open_raw(message):
    """A binary file object on the stored original bytes of `message` (caller closes it)."""
    return default_storage.open(message.raw.name, "rb")


def read_raw(message) -> bytes:
    with open_raw(message) as handle:
        return handle.read()
