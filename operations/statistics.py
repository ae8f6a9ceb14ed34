"""Usage statistics (issue 14 item 2; RULES.md §5 "suivi des usages").

`aggregate_day(day)` counts one day from the store and the audit trail into `DailyStat` rows (a
beat task every hour for the last days, and `manage.py aggregate_stats`); pages only ever read
`DailyStat`. Every stored metric is additive, so a week or a month is a sum:

| metric | per | counted from |
| --- | --- | --- |
| `sent`, `sent_source_<source>` | sending box | `message.submitted` events (source: webmail, smtp, api, patient, system) |
| `recipients_<category>` | sending box | the Delivery rows of the messages sent that day; category of the recipient: `internal` (same structure), `hosted` (another structure of this operator), `external` (another operator), `patient` |
| `delivery_<status>` | sending box | same rows, by current status (delivered, queued, relayed, bounced, returned, read) |
| `return_<reason>` | sending box | same rows with status `returned`, by reason code |
| `relay_failed` | sending box | same rows: recipients at other operators that bounced |
| `relay_deferred` | sending box | `message.relay_deferred` events: relay attempts that failed for the time being (4xx, connection) and will be tried again |
| `received`, `received_<category>` | receiving box | inbox entries received that day; category of the sender |
| `read_receipts`, `read_delay_le_<bucket>` | sending box | deliveries that turned `read` that day; the delay since sending, by bucket (the median of a period is read from the summed buckets) |
| `active` | box | 1 when a person acted on the box that day (an audit event with an actor) |
| `sign_ins`, `sign_in_failures` | structure (professionals), or the whole service (patients, administrators, unknown logins) | `login` / `login.failed` events |
| `campaign_<outcome>` | sending box of the campaign | lines of the automation app's campaigns by outcome (`sent`, `returned`, `failed`): on the day their message was sent, or, for a line that produced none, on the day of the campaign's last progress |

Counts of a day change after the day (a relay succeeds late, a message is read a week later):
the task recomputes the last `days` days each time (rows of a day are replaced).
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, Q, Value, When
from django.utils import timezone

from audit.models import AuditEvent
from automation.models import CampaignLine
from mailboxes.models import Delivery, Entry, Folder, Mailbox, Professional
from operations.models import DailyStat

# Upper bounds (seconds) of the read-delay buckets; the last bucket is "more than a week".
READ_DELAY_BUCKETS = [
    (900, "15min"),
    (3600, "1h"),
    (4 * 3600, "4h"),
    (24 * 3600, "1j"),
    (3 * 24 * 3600, "3j"),
    (7 * 24 * 3600, "7j"),
    (None, "plus"),
]
CATEGORIES = ["internal", "hosted", "external", "patient"]


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
    return start, start + datetime.timedelta(days=1)


@dataclass
class _Box:
    structure_id: int | None
    kind: str


def _boxes(ids) -> dict[int, _Box]:
    rows = Mailbox.objects.filter(pk__in={i for i in ids if i}).values_list("pk", "structure_id", "kind")
    return {pk: _Box(structure, kind) for pk, structure, kind in rows}


def category(sender: _Box | None, recipient: _Box | None) -> str:
    """Where a message went (or came from), seen from `sender`'s structure."""
    if recipient is None:
        return "external"
    if recipient.kind == Mailbox.Kind.PATIENT:
        return "patient"
    if sender is not None and sender.structure_id and sender.structure_id == recipient.structure_id:
        return "internal"
    return "hosted"


def aggregate_day(day: datetime.date) -> int:
    """Replace the DailyStat rows of `day`; return how many rows were written."""
    start, end = day_bounds(day)
    counts: Counter = Counter()  # (structure_id, mailbox_id, metric) -> value
    _count_sent(counts, start, end)
    _count_recipients(counts, start, end)
    _count_received(counts, start, end)
    _count_reads(counts, start, end)
    _count_active(counts, start, end)
    _count_sign_ins(counts, start, end)
    _count_relay_deferred(counts, start, end)
    for key, value in campaign_outcomes(day):
        counts[key] += value
    rows = [
        DailyStat(day=day, structure_id=structure, mailbox_id=box, metric=metric, value=value)
        for (structure, box, metric), value in counts.items()
        if value
    ]
    with transaction.atomic():
        DailyStat.objects.filter(day=day).delete()
        DailyStat.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _count_sent(counts: Counter, start, end) -> None:
    events = (
        AuditEvent.objects.filter(action=AuditEvent.Action.SUBMITTED, at__gte=start, at__lt=end)
        .values("mailbox_id", "actor_label")
        .annotate(n=Count("id"))
    )
    rows = list(events)
    boxes = _boxes(r["mailbox_id"] for r in rows)
    for row in rows:
        box = boxes.get(row["mailbox_id"])
        key = (box.structure_id if box else None, row["mailbox_id"])
        counts[(*key, "sent")] += row["n"]
        counts[(*key, f"sent_source_{row['actor_label'] or 'inconnue'}")] += row["n"]


def _count_recipients(counts: Counter, start, end) -> None:
    patient_address = Q(address__endswith=f"@{settings.PATIENT_DOMAIN}")
    rows = list(
        Delivery.objects.filter(message__created_at__gte=start, message__created_at__lt=end)
        .annotate(to_patient=Case(When(patient_address, then=Value(True)), default=Value(False)))
        .values("message__sender_mailbox_id", "mailbox_id", "status", "reason", "to_patient")
        .annotate(n=Count("id"))
    )
    boxes = _boxes([r["message__sender_mailbox_id"] for r in rows] + [r["mailbox_id"] for r in rows])
    for row in rows:
        sender_id = row["message__sender_mailbox_id"]
        sender = boxes.get(sender_id)
        key = (sender.structure_id if sender else None, sender_id)
        recipient = boxes.get(row["mailbox_id"])
        n = row["n"]
        # A patient address without a box (unknown INS, closed space) is still a patient.
        kind = "patient" if row["to_patient"] else category(sender, recipient)
        counts[(*key, f"recipients_{kind}")] += n
        counts[(*key, f"delivery_{row['status']}")] += n
        if row["status"] == Delivery.Status.RETURNED:
            counts[(*key, f"return_{row['reason'] or 'inconnu'}")] += n
        if row["status"] == Delivery.Status.BOUNCED and row["mailbox_id"] is None:
            counts[(*key, "relay_failed")] += n


def _count_received(counts: Counter, start, end) -> None:
    rows = list(
        Entry.objects.filter(folder__role=Folder.Role.INBOX, received_at__gte=start, received_at__lt=end)
        .values("mailbox_id", "message__sender_mailbox_id")
        .annotate(n=Count("id"))
    )
    boxes = _boxes([r["mailbox_id"] for r in rows] + [r["message__sender_mailbox_id"] for r in rows])
    for row in rows:
        box = boxes.get(row["mailbox_id"])
        key = (box.structure_id if box else None, row["mailbox_id"])
        sender = boxes.get(row["message__sender_mailbox_id"])
        counts[(*key, "received")] += row["n"]
        counts[(*key, f"received_{category(box, sender)}")] += row["n"]


def _bucket(seconds: float) -> str:
    for limit, name in READ_DELAY_BUCKETS:
        if limit is None or seconds <= limit:
            return name
    return READ_DELAY_BUCKETS[-1][1]


def _count_reads(counts: Counter, start, end) -> None:
    rows = Delivery.objects.filter(status=Delivery.Status.READ, updated_at__gte=start, updated_at__lt=end).values_list(
        "message__sender_mailbox_id", "message__created_at", "updated_at"
    )
    rows = list(rows)
    boxes = _boxes(r[0] for r in rows)
    for sender_id, sent_at, read_at in rows:
        box = boxes.get(sender_id)
        key = (box.structure_id if box else None, sender_id)
        counts[(*key, "read_receipts")] += 1
        counts[(*key, f"read_delay_le_{_bucket((read_at - sent_at).total_seconds())}")] += 1


def _count_active(counts: Counter, start, end) -> None:
    ids = (
        AuditEvent.objects.filter(at__gte=start, at__lt=end, actor_id__isnull=False, mailbox_id__isnull=False)
        .values_list("mailbox_id", flat=True)
        .distinct()
    )
    boxes = _boxes(list(ids))
    for pk, box in boxes.items():
        if box.kind != Mailbox.Kind.PATIENT:
            counts[(box.structure_id, pk, "active")] = 1


def _count_relay_deferred(counts: Counter, start, end) -> None:
    rows = (
        AuditEvent.objects.filter(action=AuditEvent.Action.RELAY_DEFERRED, at__gte=start, at__lt=end)
        .values("mailbox_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    rows = list(rows)
    boxes = _boxes(r["mailbox_id"] for r in rows)
    for row in rows:
        box = boxes.get(row["mailbox_id"])
        counts[(box.structure_id if box else None, row["mailbox_id"], "relay_deferred")] += row["n"]


def _count_sign_ins(counts: Counter, start, end) -> None:
    actions = {AuditEvent.Action.LOGIN: "sign_ins", AuditEvent.Action.LOGIN_FAILED: "sign_in_failures"}
    rows = list(
        AuditEvent.objects.filter(action__in=list(actions), at__gte=start, at__lt=end)
        .values("action", "actor_id")
        .annotate(n=Count("id"))
    )
    structures = dict(
        Professional.objects.filter(user_id__in={r["actor_id"] for r in rows if r["actor_id"]}).values_list(
            "user_id", "structure_id"
        )
    )
    for row in rows:
        counts[(structures.get(row["actor_id"]), None, actions[row["action"]])] += row["n"]


CAMPAIGN_OUTCOMES = (CampaignLine.Status.SENT, CampaignLine.Status.RETURNED, CampaignLine.Status.FAILED)


def campaign_outcomes(day: datetime.date) -> list[tuple[tuple, int]]:
    """The outcomes of campaign lines (automation app) on `day`, as
    `((structure_id, mailbox_id, "campaign_<outcome>"), count)` pairs."""
    start, end = day_bounds(day)
    on_day = Q(sent_at__gte=start, sent_at__lt=end) | Q(
        sent_at__isnull=True, campaign__last_progress_at__gte=start, campaign__last_progress_at__lt=end
    )
    rows = (
        CampaignLine.objects.filter(on_day, status__in=CAMPAIGN_OUTCOMES)
        .values("campaign__mailbox_id", "campaign__mailbox__structure_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        ((r["campaign__mailbox__structure_id"], r["campaign__mailbox_id"], f"campaign_{r['status']}"), r["n"])
        for r in rows
    ]


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whole service, one structure or one box."""

    structure_id: int | None = None
    mailbox_id: int | None = None

    def filter(self, queryset):
        if self.mailbox_id:
            return queryset.filter(mailbox_id=self.mailbox_id)
        if self.structure_id:
            return queryset.filter(structure_id=self.structure_id)
        return queryset


def period_start(day: datetime.date, granularity: str) -> datetime.date:
    if granularity == "week":
        return day - datetime.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def periods(first: datetime.date, last: datetime.date, granularity: str) -> list[datetime.date]:
    out, day = [], period_start(first, granularity)
    while day <= last:
        out.append(day)
        if granularity == "week":
            day += datetime.timedelta(days=7)
        elif granularity == "month":
            day = (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        else:
            day += datetime.timedelta(days=1)
    return out


def series(scope: Scope, first, last, granularity: str) -> tuple[list[datetime.date], dict[str, dict]]:
    """{metric: {period start: value}} over [first, last], and the list of periods."""
    rows = scope.filter(DailyStat.objects.filter(day__gte=first, day__lte=last)).values_list("day", "metric", "value")
    table: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for day, metric, value in rows:
        table[metric][period_start(day, granularity)] += value
    return periods(first, last, granularity), table


def active_boxes(scope: Scope, first, last, granularity: str) -> dict[datetime.date, int]:
    """Boxes with at least one active day in each period (a distinct count, not a sum)."""
    rows = scope.filter(DailyStat.objects.filter(day__gte=first, day__lte=last, metric="active")).values_list(
        "day", "mailbox_id"
    )
    seen: dict[datetime.date, set] = defaultdict(set)
    for day, box in rows:
        seen[period_start(day, granularity)].add(box)
    return {period: len(boxes) for period, boxes in seen.items()}


def boxes_in_scope(scope: Scope):
    boxes = Mailbox.objects.filter(is_active=True).exclude(kind=Mailbox.Kind.PATIENT)
    if scope.mailbox_id:
        return boxes.filter(pk=scope.mailbox_id)
    if scope.structure_id:
        return boxes.filter(structure_id=scope.structure_id)
    return boxes


def median_bucket(buckets: dict[str, int]) -> str:
    """The bucket holding the median read delay, from summed bucket counts."""
    total = sum(buckets.values())
    if not total:
        return ""
    running = 0
    for _limit, name in READ_DELAY_BUCKETS:
        running += buckets.get(name, 0)
        if running * 2 >= total:
            return name
    return READ_DELAY_BUCKETS[-1][1]


def today_traffic(now=None) -> dict[str, int]:
    """Live counts of today for the dashboard (indexed by the audit trail's time)."""
    start, _end = day_bounds(timezone.localdate(now))
    rows = (
        AuditEvent.objects.filter(at__gte=start)
        .filter(Q(action__startswith="message.") | Q(action__startswith="login"))
        .values("action")
        .annotate(n=Count("id"))
    )
    return {row["action"]: row["n"] for row in rows}
