"""`manage.py verify_store` (issue 14 item 6): every stored message, attachment and record
document is present in the storage and its bytes match the SHA-256 kept in the database.

Files are content-addressed (mailboxes/store.py): one file may back many rows, so each storage
name is read once. Reading is streamed in 1 MB chunks (a 25 MB message is never held whole).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.core.files.storage import default_storage

from automation.models import StandingAttachment
from health_record.models import Document
from mailboxes.models import Attachment, Message

CHUNK = 1024 * 1024
# Every column that names a stored file, with its kind: what `verify_store` reads and what
# `sweep_store` (operations/store_sweep.py) takes as named. Each FileField of the project, and
# the message models' standing attachments, a storage name in a text column
# (tests/operations/test_store_sweep.py holds the list to the models).
STORED_FILES = [
    ("message", Message, "raw"),
    ("attachment", Attachment, "file"),
    ("document", Document, "file"),
    ("model attachment", StandingAttachment, "file"),
]


@dataclass
class StoreReport:
    checked: int = 0
    files: int = 0
    missing: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, id, storage name)
    corrupt: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


def file_digest(name: str) -> str | None:
    """SHA-256 of a stored file, or None when it is absent."""
    digest = hashlib.sha256()
    try:
        with default_storage.open(name, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError:
        if not default_storage.exists(name):
            return None
        raise
    return digest.hexdigest()


def verify_store(since=None) -> StoreReport:
    report = StoreReport()
    seen: dict[str, str | None] = {}
    for kind, model, field_name in STORED_FILES:
        rows = model.objects.order_by("pk")
        if since is not None and kind == "message":
            rows = rows.filter(created_at__date__gte=since)
        elif since is not None and kind == "attachment":
            rows = rows.filter(message__created_at__date__gte=since)
        for pk, name, sha256 in rows.values_list("pk", field_name, "sha256").iterator(chunk_size=2000):
            report.checked += 1
            if name not in seen:
                seen[name] = file_digest(name) if name else None
                report.files += 1
            actual = seen[name]
            if actual is None:
                report.missing.append((kind, pk, name))
            elif actual != sha256:
                report.corrupt.append((kind, pk, name))
    return report
