"""The tamper-evident audit trail (RULES.md §5: operators can be audited; issue 14).

Design
- Events form hash chains. A chain is one day × one partition (`AuditChain`). Each event carries
  its place (`chain`, `seq`), the hash of the event before it (`prev_hash`) and its own `hash`
  = SHA-256(prev_hash + "\\n" + canonical JSON of its fields). Changing, inserting or deleting a
  row breaks the chain at that row; `verify()` names it.
- Writers never queue on one lock: `link()` takes a chain head of the day that no other
  transaction holds (`SELECT … FOR UPDATE SKIP LOCKED`), and opens a new partition when all are
  busy. The head stays locked until the writer's transaction ends, so a chain's order is its
  commit order and a rolled-back transaction leaves no hole. Cost on the ingest path: none of
  its own on PostgreSQL (the head is locked in the round trip that reserves the delivery's ids,
  `free_head_value`, and moved in the statement that writes its rows), whatever the number of
  events; elsewhere two statements per transaction (the head lock, the head update).
- A closed day is sealed (`AuditSeal`): the final seq and hash of each of its chains, chained to
  the previous day's seal. The seal hash is logged, so an operator can keep it outside the
  database (syslog, a ticket): recomputing a whole day's chains then no longer goes unnoticed.
- Retention deletes whole sealed days (audit/retention.py); the seals stay, marked purged.

The canonical form is documented in docs/operations.md so that an auditor can recompute a chain
with nothing but the exported rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.models import AuditChain, AuditEvent, AuditSeal

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# A day is sealed this long after it ended, so that a transaction still open at midnight lands
# in its chain before the seal is computed.
SEAL_GRACE = timedelta(minutes=10)
HEAD_ATTEMPTS = 8

# Sent after the transaction that wrote `rows` committed (metrics count them: operations/).
events_committed = Signal()
# Inside `one_signal_per_block`: the rows linked so far whose savepoints committed.
_gathered: ContextVar[list[AuditEvent] | None] = ContextVar("audit_chain_gathered", default=None)


@contextlib.contextmanager
def one_signal_per_block(using: str = "default") -> Iterator[None]:
    """Inside the caller's transaction: the rows every `link` of the block writes are sent in ONE
    `events_committed` after the COMMIT (issue 9: a campaign's chunk of 50 deliveries, its
    receivers answering the chunk's rows with one query instead of one per delivery). Each link
    still registers its own on-commit step, which only adds its rows to the block's list: the
    rows of a savepoint that rolled back are dropped with it, as outside a block. On an exception
    nothing is registered (the caller's transaction rolls back)."""
    if _gathered.get() is not None:
        yield  # already inside a block: its end sends everything
        return
    rows: list[AuditEvent] = []
    token = _gathered.set(rows)
    try:
        yield
    finally:
        _gathered.reset(token)
    # Registered after the links' steps, so it runs after them (Django runs them in order).
    transaction.on_commit(lambda: _send(rows), using=using)


def _send(rows: list[AuditEvent]) -> None:
    if rows:
        events_committed.send_robust(sender=AuditEvent, rows=rows)


# --- hashing -----------------------------------------------------------------------------------


def normalise_ip(value) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _int_or_none(value) -> int | None:
    return None if value is None or value == "" else int(value)


def canonical(fields: dict, day: date, partition: int) -> bytes:
    """The bytes an event's hash covers: its chain position and every stored field but its id."""
    at = fields["at"]
    if timezone.is_naive(at):
        at = timezone.make_aware(at, UTC)
    payload = [
        day.isoformat(),
        int(partition),
        int(fields["seq"]),
        at.astimezone(UTC).isoformat(timespec="microseconds"),
        _int_or_none(fields["actor_id"]),
        fields["actor_label"] or "",
        fields["action"],
        fields["object_type"] or "",
        str(fields["object_id"] or ""),
        _int_or_none(fields["mailbox_id"]),
        _int_or_none(fields["message_id"]),
        fields["outcome"] or "",
        fields["detail"] or {},
        normalise_ip(fields["ip"]),
    ]
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, fields: dict, day: date, partition: int) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields, day, partition)).hexdigest()


def _row_fields(row: AuditEvent) -> dict:
    return {name: getattr(row, name) for name in HASHED_FIELDS}


HASHED_FIELDS = [
    "seq",
    "at",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "mailbox_id",
    "message_id",
    "outcome",
    "detail",
    "ip",
]


# --- appending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadMove:
    """A chain head to move once its new rows are written: its new last seq and hash."""

    head_id: int
    seq: int
    head_hash: str

    def as_sql(self) -> tuple[str, list]:
        """The UPDATE of the head, for a caller that runs it inside its own statement."""
        return MOVE_HEAD_SQL, [self.seq, self.head_hash, self.head_id]


def link(rows: list[AuditEvent], using: str = "default") -> None:
    """Give each unsaved row its place in a chain. Call it inside the transaction that inserts
    the rows: the chain heads it takes stay locked until that transaction ends."""
    for move in link_deferred(rows, using):
        _move_head(move, using)


def link_deferred(
    rows: list[AuditEvent], using: str = "default", taken: dict[date, AuditChain] | None = None
) -> list[HeadMove]:
    """`link` without the heads' UPDATE: the heads are taken (locked) and the rows hashed as by
    `link`, and the moves are returned for the caller to write in the same transaction, in the
    statement that inserts the rows (the delivery path, issue 17: one round trip fewer). A
    caller that does not write them leaves the chain broken, which `verify` reports. `taken`:
    heads the caller already locked in this transaction (`free_head_value`), by day; a day
    without one is taken here."""
    if not rows:
        return []
    if not transaction.get_connection(using).in_atomic_block:
        raise RuntimeError("audit rows are linked inside the transaction that writes them")
    now = timezone.now()
    by_day: dict[date, list[AuditEvent]] = defaultdict(list)
    for row in rows:
        if row.at is None:
            row.at = now
        row.ip = normalise_ip(row.ip)
        row.object_id = str(row.object_id or "")
        row.detail = row.detail or {}
        by_day[_chain_day(row.at, now)].append(row)
    moves = []
    taken = dict(taken or {})
    for day, day_rows in sorted(by_day.items()):
        head = taken.pop(day, None) or _take_head(day, using)
        prev, seq = head.head_hash or GENESIS, head.seq
        for row in day_rows:
            seq += 1
            row.chain = head
            row.seq = seq
            row.prev_hash = prev
            row.hash = prev = event_hash(prev, _row_fields(row), day, head.partition)
        moves.append(HeadMove(head.pk, seq, prev))
    gathered = _gathered.get()
    if gathered is None:
        transaction.on_commit(lambda: _send(rows), using=using)
    else:
        transaction.on_commit(lambda: gathered.extend(rows), using=using)
    return moves


def _chain_day(at: datetime, now: datetime) -> date:
    """The local day of the event, unless that day is already sealed (an event dated in the
    past, or a transaction held open across the seal): then today's chain takes it."""
    day, today = timezone.localdate(at), timezone.localdate(now)
    if day >= today:
        return day
    if AuditSeal.objects.filter(day__gte=day).exists():
        return today
    return day


def _take_head(day: date, using: str) -> AuditChain:
    heads = AuditChain.objects.using(using).select_for_update(skip_locked=True)
    for _attempt in range(HEAD_ATTEMPTS):
        head = _free_head(day, using)
        if head is not None:
            return head
        # Every head of the day is held by another transaction (or none exists yet): open one.
        partition = _new_partition(day, using)
        AuditChain.objects.using(using).bulk_create([AuditChain(day=day, partition=partition)], ignore_conflicts=True)
        head = heads.filter(day=day, partition=partition).first()
        if head is not None:
            return head
    raise RuntimeError(f"no audit chain head available for {day}")


# On the ingest path the two statements are written out once (the ORM would compile them for
# every delivery); elsewhere (SQLite, one writer at a time) the ORM does it.
# Which head is free: the day's first one that no other transaction holds.
_FREE_HEAD = "FROM audit_auditchain WHERE day = %s ORDER BY partition LIMIT 1 FOR UPDATE SKIP LOCKED"
FREE_HEAD_SQL = f"SELECT id, partition, seq, head_hash {_FREE_HEAD}"
MOVE_HEAD_SQL = "UPDATE audit_auditchain SET seq = %s, head_hash = %s WHERE id = %s"
# The same free head as one value (a JSON array: id, partition, seq, head_hash; NULL when every
# head of the day is held or none exists), for a caller that takes it inside a statement of its
# own: the delivery path reserves its ids in that round trip (issue 17).
FREE_HEAD_VALUE_SQL = f"(SELECT json_build_array(id, partition, seq, head_hash) {_FREE_HEAD})"


def current_day() -> date:
    """The day whose chain takes an event written now."""
    return timezone.localdate(timezone.now())


def free_head_value(day: date) -> tuple[str, list]:
    """(SQL expression, parameters) that locks and returns a free head of `day` (PostgreSQL);
    `heads_taken` reads its value, for `link_deferred(taken=…)`."""
    return FREE_HEAD_VALUE_SQL, [day]


def heads_taken(day: date, value, using: str = "default") -> dict[date, AuditChain]:
    """`link_deferred`'s `taken` from `free_head_value`'s value (its id, partition, seq,
    head_hash): nothing when it was NULL."""
    return {} if value is None else {day: _head(using, day, *value)}


def _head(using: str, day: date, pk: int, partition: int, seq: int, head_hash: str | None) -> AuditChain:
    return AuditChain.from_db(
        using, ["id", "day", "partition", "seq", "head_hash"], [pk, day, partition, seq, head_hash]
    )


def _free_head(day: date, using: str) -> AuditChain | None:
    connection = transaction.get_connection(using)
    if connection.vendor != "postgresql":
        return (
            AuditChain.objects.using(using)
            .select_for_update(skip_locked=True)
            .filter(day=day)
            .order_by("partition")
            .first()
        )
    with connection.cursor() as cursor:
        cursor.execute(FREE_HEAD_SQL, [day])
        row = cursor.fetchone()
    return None if row is None else _head(using, day, *row)


def _move_head(move: HeadMove, using: str) -> None:
    connection = transaction.get_connection(using)
    if connection.vendor != "postgresql":
        AuditChain.objects.using(using).filter(pk=move.head_id).update(seq=move.seq, head_hash=move.head_hash)
        return
    with connection.cursor() as cursor:
        cursor.execute(*move.as_sql())


# Linux process ids stay below 2**22 (`kernel.pid_max`): a connection's partition numbers are
# its backend's pid plus a multiple of this, so no two live connections share one.
PID_SPAN = 2**22


def _new_partition(day: date, using: str) -> int:
    """A partition number of the day that no other open transaction can be creating or holding,
    so its INSERT never waits. On PostgreSQL: the backend's pid plus the first multiple of
    PID_SPAN not yet used that day. Only this connection makes numbers of its pid (two live
    connections never share one), so one that does not exist yet cannot appear meanwhile; and
    one that exists is skipped even when free: another writer may hold it, and an INSERT that
    meets a row updated by an open transaction waits for it, which could deadlock with the box
    rows that writer waits for. Elsewhere, one writer at a time."""
    connection = transaction.get_connection(using)
    if connection.vendor != "postgresql":
        return AuditChain.objects.using(using).filter(day=day).count()
    connection.ensure_connection()
    pid = int(connection.connection.info.backend_pid)
    used = set(AuditChain.objects.using(using).filter(day=day).values_list("partition", flat=True))
    return next(pid + k * PID_SPAN for k in range(2**31 // PID_SPAN) if pid + k * PID_SPAN not in used)


# --- sealing -----------------------------------------------------------------------------------


def seal_hash(prev_hash: str, day: date, chains: list) -> str:
    payload = json.dumps([day.isoformat(), chains], separators=(",", ":"))
    return hashlib.sha256(prev_hash.encode() + b"\n" + payload.encode()).hexdigest()


def _day_heads(day: date) -> list[list]:
    return [
        [partition, seq, head_hash]
        for partition, seq, head_hash in AuditChain.objects.filter(day=day)
        .order_by("partition")
        .values_list("partition", "seq", "head_hash")
    ]


def last_sealable_day(now: datetime | None = None) -> date:
    return timezone.localdate((now or timezone.now()) - SEAL_GRACE) - timedelta(days=1)


def seal_closed_days(now: datetime | None = None) -> list[AuditSeal]:
    """Seal every closed day not sealed yet (days without events too, so that the seals have no
    gap), oldest first. Safe to run twice or concurrently: a day is sealed once."""
    until = last_sealable_day(now)
    last = AuditSeal.objects.order_by("-day").first()
    if last is not None:
        start, prev = last.day + timedelta(days=1), last.hash
    else:
        first = AuditChain.objects.order_by("day").values_list("day", flat=True).first()
        if first is None:
            return []
        start, prev = first, GENESIS
    sealed = []
    day = start
    while day <= until:
        chains = _day_heads(day)
        seal = AuditSeal(
            day=day,
            chains=chains,
            events=sum(c[1] for c in chains),
            prev_hash=prev,
            hash=seal_hash(prev, day, chains),
        )
        try:
            with transaction.atomic():
                seal.save()
        except IntegrityError:  # another sealer got there first
            return sealed
        log.info("audit day sealed: day=%s events=%d hash=%s", day.isoformat(), seal.events, seal.hash)
        sealed.append(seal)
        prev = seal.hash
        day += timedelta(days=1)
    return sealed


# --- verifying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """A broken link: where, and what is wrong there (in French, for the operator)."""

    day: date
    partition: int | None
    seq: int | None
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"jour {self.day:%Y-%m-%d}"
        if self.partition is not None:
            where += f", chaîne {self.partition}"
        if self.seq is not None:
            where += f", rang {self.seq}"
        if self.event_id is not None:
            where = f"trace #{self.event_id} ({where})"
        return f"{where} : {self.reason}"


@dataclass
class Report:
    events: int = 0
    chains: int = 0
    seals: int = 0
    breaks: list[Break] | None = None

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


VERIFY_FIELDS = ["pk", "chain_id", "prev_hash", "hash", *HASHED_FIELDS]


def verify(since: date | None = None) -> Report:
    """Walk the seals and every chain (from `since` on) and return what is broken, in order."""
    report = Report(breaks=[])
    report.breaks += _verify_seals(since, report)
    purged = AuditSeal.objects.filter(purged_at__isnull=False).values("day")
    chains = AuditChain.objects.exclude(day__in=purged).order_by("day", "partition")
    if since is not None:
        chains = chains.filter(day__gte=since)
    for chain in chains:
        report.chains += 1
        report.breaks += _verify_chain(chain, report)
    report.breaks += _unchained(since)
    report.breaks.sort(key=lambda b: (b.day, b.partition or 0, b.seq or 0))
    return report


def _verify_chain(chain: AuditChain, report: Report) -> list[Break]:
    rows = AuditEvent.objects.filter(chain_id=chain.pk).order_by("seq").values(*VERIFY_FIELDS)
    prev, expected = GENESIS, 1
    for row in rows.iterator(chunk_size=5000):
        report.events += 1

        def broken(reason, row=row):
            return [Break(chain.day, chain.partition, row["seq"], row["pk"], reason)]

        if row["seq"] != expected:
            return broken(f"rang {expected} attendu : {row['seq'] - expected} trace(s) supprimée(s) avant celle-ci")
        if row["prev_hash"] != prev:
            return broken("l'empreinte de la trace précédente ne correspond pas (trace précédente modifiée)")
        if event_hash(prev, row, chain.day, chain.partition) != row["hash"]:
            return broken("le contenu de la trace ne correspond plus à son empreinte (trace modifiée)")
        prev, expected = row["hash"], expected + 1
    if chain.seq != expected - 1 or (chain.seq and chain.head_hash != prev):
        return [
            Break(
                chain.day,
                chain.partition,
                expected,
                None,
                f"la chaîne annonce {chain.seq} trace(s), {expected - 1} trouvée(s) (fin de chaîne supprimée)",
            )
        ]
    return []


def _verify_seals(since: date | None, report: Report) -> list[Break]:
    seals = list(AuditSeal.objects.order_by("day"))
    breaks, prev, previous_day = [], GENESIS, None
    for seal in seals:
        report.seals += 1
        checked = since is None or seal.day >= since
        if previous_day is not None and seal.day != previous_day + timedelta(days=1) and checked:
            breaks.append(Break(seal.day, None, None, None, f"scellements manquants depuis le {previous_day:%d/%m/%Y}"))
        if checked and seal.prev_hash != prev:
            breaks.append(Break(seal.day, None, None, None, "le scellement ne suit pas celui de la veille"))
        if checked and seal_hash(seal.prev_hash, seal.day, seal.chains) != seal.hash:
            breaks.append(Break(seal.day, None, None, None, "le scellement a été modifié"))
        if checked and seal.purged_at is None and _day_heads(seal.day) != seal.chains:
            breaks.append(Break(seal.day, None, None, None, "les chaînes du jour ne correspondent plus au scellement"))
        prev, previous_day = seal.hash, seal.day
    return breaks


def _unchained(since: date | None) -> list[Break]:
    rows = AuditEvent.objects.filter(chain__isnull=True)
    if since is not None:
        rows = rows.filter(at__date__gte=since)
    return [
        Break(timezone.localdate(at), None, None, pk, "trace hors chaîne")
        for pk, at in rows.order_by("at").values_list("pk", "at")[:100]
    ]
