"""Importing the national extract: the one business process behind `manage.py import_annuaire`,
the scheduled task and the demo data (RULES.md §1 "a national directory lists every user").

`import_extract(path)` reads the file a line at a time (directory/extract.py), stages and
compares it in SQL (directory/staging.py) and applies the difference in one transaction: the
directory is the old one or the new one, never a mix. A malformed file, or one that would remove
more than `DIRECTORY_MAX_REMOVED_PERCENT` % of the national entries (a file cut at a line end looks
well formed), is refused whole unless forced. Every run is recorded (`ImportRun`) and audited.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from directory import hosted, staging, swap
from directory.extract import MAX_REPORTED, ExtractRefused, Progress, Rejected, open_extract
from directory.models import ImportRun

log = logging.getLogger(__name__)
# Above this share of new or changed entries the trigram index is rebuilt rather than updated.
REBUILD_SHARE = 0.25


class ImportRefused(ValueError):
    """The file was refused whole; the directory is unchanged. `run` is the recorded run."""

    def __init__(self, message: str, run: ImportRun):
        super().__init__(message)
        self.run = run


@dataclass
class Rejections:
    count: int = 0
    lines: list[dict] = field(default_factory=list)

    def __call__(self, rejected: Rejected) -> None:
        self.count += 1
        if len(self.lines) < MAX_REPORTED:
            self.lines.append({"line": rejected.line, "reason": rejected.reason})

    def extend(self, total: int, first: list[Rejected]) -> None:
        """Rejections found in SQL: their total and the first ones, merged in line order."""
        self.count += total
        merged = self.lines + [{"line": r.line, "reason": r.reason} for r in first]
        self.lines = sorted(merged, key=lambda item: item["line"])[:MAX_REPORTED]


class Phases:
    """Seconds spent in each step of an import, kept in the run (admin, benchmark)."""

    def __init__(self, record: dict):
        self.record = record

    @contextmanager
    def __call__(self, name: str):
        began = time.monotonic()
        try:
            yield
        finally:
            self.record[name] = round(time.monotonic() - began, 3)


def import_extract(path, *, source: str = "", force: bool = False, actor=None) -> ImportRun:
    """Import the extract at `path`; return the finished run or raise `ImportRefused`."""
    run = ImportRun.objects.create(source=(source or str(path))[:500])
    began = time.monotonic()
    rejections = Rejections()
    counter = Progress()
    phase = Phases(run.phases)
    # A large import outside any transaction builds the new directory beside the live one and
    # swaps it in (directory/swap.py); otherwise everything happens in one transaction.
    swapping = swap.usable()
    try:
        if swapping:
            swap.lock_imports()
        with transaction.atomic(), connection.cursor() as cursor:
            swap.hold_imports()  # before the directory writers' lock, in every import: one order
            hosted.lock_directory()
            # A swapping import stages into tables its other connections read after this commits;
            # a first import (no national entry yet) compares nothing and stages cells as columns.
            first = staging.first_import(cursor)
            with open_extract(path) as stream, phase("read and stage"):
                addresses = staging.stage(cursor, stream, rejections, counter, shared=swapping, first=first)
            with phase("group and compare"):
                staging.group_by_address(cursor, shared=swapping, first=first)
                counts = staging.classify(cursor, addresses, shared=swapping, first=first)
                before = counts["national"]
                _check_removals(counts["removed"], before, force)
                run.samples = staging.samples(cursor, first=first)
            large = staging.postgres() and counts["added"] + counts["changed"] > max(before, 1) * REBUILD_SHARE
            if large and swapping:
                with phase("new tables"):  # committed with this transaction, empty: built next
                    swap.create(cursor)
                    base = swap.reserve_ids(cursor)
            else:
                with phase("build changed"):
                    staging.build_changes(cursor, first=first)
                _apply(cursor, phase, large)
        if large and swapping:
            _swap_in(phase, base, first)
    except ExtractRefused as exc:
        _finish(run, began, counter, rejections, status=ImportRun.Status.REFUSED, error=str(exc), actor=actor)
        raise ImportRefused(str(exc), run) from None
    except Exception as exc:
        _finish(run, began, counter, rejections, status=ImportRun.Status.FAILED, error=type(exc).__name__, actor=actor)
        raise
    finally:
        if swapping:
            _drop_leftovers()
    run.added, run.changed, run.removed = counts["added"], counts["changed"], counts["removed"]
    # An address kept because its rows were all rejected is in the file and unchanged.
    run.unchanged, run.kept, run.hosted = counts["same"] + counts["kept"], counts["kept"], counts["hosted"]
    run.entries = counts["added"] + counts["changed"] + run.unchanged + counts["hosted"]
    _finish(run, began, counter, rejections, status=ImportRun.Status.DONE, actor=actor)
    return run


def _apply(cursor, phase: Phases, large: bool) -> None:
    """In the import's transaction: apply the difference to the live tables (a large change
    drops and rebuilds their indexes there), then mirror the hosted boxes."""
    restore = staging.drop_indexes(cursor) if large else []
    with phase("apply"):
        staging.apply(cursor)
    if large:
        with phase("build indexes"):
            staging.build_indexes(cursor, restore)
    with phase("hosted boxes"):
        hosted.sync_all()


def _swap_in(phase: Phases, base: int, first: bool) -> None:
    """The new tables (created and committed empty, the staged rows committed beside them):
    search rows and entries side by side, then every index, the trigram index in parallel
    (`swap.build_next`); the swap, the mirror."""
    with phase("build new tables"):
        swap.build_next(base, phase.record, first)
    with phase("swap"), transaction.atomic(), connection.cursor() as cursor:
        swap.swap(cursor)
    with phase("hosted boxes"), transaction.atomic():
        hosted.sync_all()


def _drop_leftovers() -> None:
    """After a swapping import, failed or not: no new table is left behind; the lock goes."""
    with connection.cursor() as cursor:
        swap.drop_next(cursor)
        staging.drop_temporary(cursor)
    swap.unlock_imports()


def record_failure(source: str, error: str) -> ImportRun:
    """A scheduled import that could not even start (source unset, download failed), for the admin."""
    run = ImportRun.objects.create(source=source[:500], status=ImportRun.Status.FAILED, error=error)
    _finish(run, time.monotonic(), None, Rejections(), status=ImportRun.Status.FAILED, error=error)
    return run


def _check_removals(removed: int, before: int, force: bool) -> None:
    percent = settings.DIRECTORY_MAX_REMOVED_PERCENT
    if force or before == 0 or removed * 100 <= before * percent:
        return
    raise ExtractRefused(
        f"ce fichier retirerait {removed} des {before} adresses de l'annuaire national "
        f"(plus de {percent} %) : fichier incomplet ? Relancez avec --force si c'est voulu"
    )


def _finish(run, began, counter, rejections, *, status, error="", actor=None) -> None:
    run.status = status
    run.error = error
    run.lines = max((counter.lines if counter else 0) - 1, 0)
    run.rejected = rejections.count
    run.rejected_lines = rejections.lines
    run.finished_at = timezone.now()
    run.seconds = round(time.monotonic() - began, 3)
    run.save()
    record(
        AuditEvent.Action.DIRECTORY_IMPORTED,
        actor=actor,
        actor_label="" if actor else "system",
        obj=run,
        outcome=status,
        detail={
            "added": run.added,
            "changed": run.changed,
            "removed": run.removed,
            "kept": run.kept,
            "rejected": run.rejected,
        },
    )
    log.info(
        "directory import: run=%s status=%s lines=%s added=%s changed=%s removed=%s kept=%s rejected=%s seconds=%s",
        run.pk,
        status,
        run.lines,
        run.added,
        run.changed,
        run.removed,
        run.kept,
        run.rejected,
        run.seconds,
    )


def summary_lines(run: ImportRun) -> list[str]:
    """The French report printed by the command and shown in the admin."""
    lines = [
        f"{run.lines} ligne(s) lue(s), {run.entries} adresse(s) dans le fichier",
        f"{run.added} ajoutée(s), {run.changed} modifiée(s), {run.removed} retirée(s), "
        f"{run.unchanged} inchangée(s), {run.hosted} hébergée(s) ici (données locales gardées)",
        f"{run.rejected} ligne(s) rejetée(s)",
    ]
    if run.kept:
        lines[-1] += (
            f" ; {run.kept} adresse(s) dont toutes les lignes sont rejetées gardent leur entrée "
            "précédente (comptées inchangées)"
        )
    lines += [f"  ligne {item['line']} : {item['reason']}" for item in run.rejected_lines]
    if run.rejected > len(run.rejected_lines):
        lines.append(f"  … et {run.rejected - len(run.rejected_lines)} autre(s)")
    lines.append(f"durée : {run.seconds:.1f} s")
    return lines
