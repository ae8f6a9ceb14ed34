"""`manage.py sweep_store` (daily on the beat): the message store's files that no row names.

A delivery writes its files (the raw message, its attachments) before the transaction of its
rows, so that they are on stable storage before the `250` (issue 17). When that transaction
does not commit (a refusal found late, a box filled up meanwhile, a kill or a crash between the
two), the files stay, named by no row: health data that nobody can read and no purge removes.
Drafts, message models and IMAP APPEND write to the same folders.

Files are content-addressed and shared (mailboxes/store.py): a later delivery of the same bytes
may take up such a file at any moment. So nothing is deleted at once:

1. a file of `raw/` or `att/` named by no row (`store_check.STORED_FILES`), and older than
   STORE_ORPHAN_HOURS, moves to `quarantine/` (its name kept after that prefix);
2. a quarantined file whose name a row has come to name since (a delivery took it up just as
   it moved) moves back, with a warning in the log;
3. a quarantined file kept STORE_QUARANTINE_DAYS, and still named by no row, is deleted.

A delivery that finds its file gone before its fsync fails and is retried by its sender (the
file is then written again); one that fsynced it just before the move commits a row naming a
quarantined file, which step 2 brings back at the next sweep. Only the storage's public API is
used (listdir, get_modified_time, open, save, delete), so object storage (S3) works the same.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from operations.store_check import STORED_FILES

log = logging.getLogger("operations.store_sweep")

FOLDERS = ("raw", "att")
QUARANTINE = "quarantine/"
CHUNK = 500  # names per reference query


@dataclass
class SweepReport:
    quarantined: int = 0
    restored: int = 0
    deleted: int = 0
    quarantined_bytes: int = 0
    deleted_bytes: int = 0


def referenced(names: list[str]) -> set[str]:
    """Those of `names` that some row names (any column of `store_check.STORED_FILES`)."""
    found: set[str] = set()
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        for _kind, model, field in STORED_FILES:
            found.update(model._default_manager.filter(**{f"{field}__in": chunk}).values_list(field, flat=True))
    return found


def walk(folder: str) -> Iterator[list[str]]:
    """The file names under `folder` (two levels, as mailboxes/store.py writes them), one list
    per directory."""
    try:
        directories, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    if files:
        yield [f"{folder}/{name}" for name in sorted(files)]
    for directory in sorted(directories):
        yield from walk(f"{folder}/{directory}")


def older_than(name: str, limit: datetime.datetime) -> bool:
    try:
        return default_storage.get_modified_time(name) < limit
    except FileNotFoundError:
        return False


def move(source: str, target: str) -> bool:
    """`source` to `target` (False when `source` went meanwhile). When `target` is there already
    it holds the same bytes (the same content-addressed name): `source` is only removed."""
    try:
        if not default_storage.exists(target):
            with default_storage.open(source, "rb") as handle:
                saved = default_storage.save(target, handle)
            if saved != target:  # the storage chose another name: not a copy to keep
                default_storage.delete(saved)
                return False
        default_storage.delete(source)
    except FileNotFoundError:
        return False
    return True


def size_of(name: str) -> int:
    try:
        return default_storage.size(name)
    except FileNotFoundError:
        return 0


def sweep_store(now: datetime.datetime | None = None, *, dry_run: bool = False) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()
    keep_until = now - datetime.timedelta(days=settings.STORE_QUARANTINE_DAYS)
    for folder in FOLDERS:
        for quarantined in walk(QUARANTINE + folder):
            originals = [name.removeprefix(QUARANTINE) for name in quarantined]
            named = referenced(originals)
            for name, original in zip(quarantined, originals, strict=True):
                if original in named:
                    log.warning("stored file named again, restored from quarantine: %s", original)
                    report.restored += dry_run or move(name, original)
                elif older_than(name, keep_until):
                    size = size_of(name)
                    if not dry_run:
                        default_storage.delete(name)
                    report.deleted += 1
                    report.deleted_bytes += size
    orphan_before = now - datetime.timedelta(hours=settings.STORE_ORPHAN_HOURS)
    for folder in FOLDERS:
        for names in walk(folder):
            named = referenced(names)
            for name in names:
                if name in named or not older_than(name, orphan_before):
                    continue
                size = size_of(name)
                if dry_run or move(name, QUARANTINE + name):
                    report.quarantined += 1
                    report.quarantined_bytes += size
    log.info(
        "store sweep: quarantined=%d restored=%d deleted=%d dry_run=%s",
        report.quarantined,
        report.restored,
        report.deleted,
        dry_run,
    )
    return report
