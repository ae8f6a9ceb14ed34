"""Outbound relay to other MSSanté operators (issue 3 item 6; DESIGN.md "Mail in and out").

RULES.md §1: exchanges are traceable, with no loss of messages. The delivery path writes one
`Outbox` row per external domain in the same transaction as the message, and calls `enqueue`
after commit. `send_outbox` then:

1. claims the row by a conditional UPDATE (pending → sending): a duplicate task is a no-op;
2. sends the stored raw bytes unchanged (same Message-ID) to the relay of the settings, behind
   our own `Received:` line (`trace_line`: the hops of a loop add up, RFC 5321 §6.3);
3. on 250: row sent, deliveries relayed, audit `message.relayed`;
   on 4xx or a connection problem: row back to pending with exponential backoff;
   on 5xx, or once the retry window has passed: row failed, deliveries bounced, audit
   `message.bounced`, and one non-delivery report (RFC 3464) in the sender's box — never
   for a report, so no loop.

A worker killed between the claim and the end leaves the row in "sending": `sweep_outbox`
(Celery beat, or `manage.py relay_sweep` from cron) puts it back in line after
RELAY_SENDING_TIMEOUT_SECONDS, and re-queues pending rows whose task was lost. The message
then goes out at least once, always with the same bytes. Logs carry ids and codes only.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.utils import format_datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import events
from mailboxes import outbox, reports, store
from mailboxes.models import Delivery, Message, Outbox

log = logging.getLogger("mailboxes.relay")

SWEEP_BATCH = 1000
BARE_LF_RE = re.compile(rb"(?<!\r)\n")
ENHANCED_CODE_RE = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok", "temporary" or "permanent"
    code: int = 250
    text: str = ""

    @property
    def status(self) -> str:
        """The RFC 3463 status for a DSN: the peer's enhanced code when it gave one."""
        match = ENHANCED_CODE_RE.match(self.text.encode("ascii", "replace"))
        if match:
            return match.group(1).decode()
        return {"ok": "2.0.0", "temporary": "4.0.0"}.get(self.kind, "5.0.0")

    @property
    def diagnostic(self) -> str:
        """The peer's reply, for the DSN's `Diagnostic-Code: smtp; ...`."""
        return f"{self.code} {self.text}".strip() if self.code else self.text


OK = Outcome("ok")


def classify(code: int, text: bytes | str) -> Outcome:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())[:250]
    if 200 <= code < 300:
        return OK
    return Outcome("permanent" if 500 <= code < 600 else "temporary", code, text)


def client_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.RELAY_TLS_CA_FILE or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.RELAY_TLS_MAX_VERSION == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(settings.SMTPD_TLS_CIPHERS)
    if not settings.RELAY_TLS_VERIFY:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def envelope_id(message: Message) -> str:
    """`ENVID` (RFC 3461) of a relayed message: a peer's non-delivery report names it
    (`Original-Envelope-Id`), and `mailboxes.bounces` finds the message by it. xtext-safe."""
    return f"mss.{message.pk}.{message.sha256[:16]}"


def mail_options(client: smtplib.SMTP, raw: bytes, envid: str) -> list[str]:
    """What the peer advertised and the message needs: `BODY=8BITMIME` for an 8-bit body
    (RFC 6152); `RET=HDRS` and `ENVID` when it speaks DSN (RFC 3461), so that its reports
    carry our envelope id and the original headers only."""
    options = []
    if client.has_extn("8bitmime") and not raw.isascii():
        options.append("BODY=8BITMIME")
    if client.has_extn("dsn") and envid:
        options += ["RET=HDRS", f"ENVID={envid}"]
    return options


def transmit(sender: str, recipients: list[str], raw: bytes, envid: str = "") -> dict[str, Outcome]:
    """One SMTP transaction with the relay: the outcome for each recipient."""
    if not settings.RELAY_HOST:
        return dict.fromkeys(recipients, Outcome("temporary", 0, "no relay configured (RELAY_HOST)"))
    try:
        with smtplib.SMTP(
            settings.RELAY_HOST,
            settings.RELAY_PORT,
            local_hostname=settings.RELAY_HELO_NAME or None,
            timeout=settings.RELAY_TIMEOUT,
        ) as client:
            client.ehlo()
            if settings.RELAY_USE_TLS:
                client.starttls(context=client_tls_context())
                client.ehlo()
            if settings.RELAY_USERNAME:
                client.login(settings.RELAY_USERNAME, settings.RELAY_PASSWORD)
            refused = client.sendmail(sender, recipients, raw, mail_options(client, raw, envid))
    except smtplib.SMTPRecipientsRefused as exc:
        return {
            r: classify(*exc.recipients[r]) if r in exc.recipients else Outcome("temporary", 0, "") for r in recipients
        }
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        # About this message: the reply class decides.
        return dict.fromkeys(recipients, classify(exc.smtp_code, exc.smtp_error))
    except (smtplib.SMTPException, OSError) as exc:
        # Connection, TLS, greeting, authentication: about our link to the relay, never the
        # message; retried until fixed or until the window closes.
        code = getattr(exc, "smtp_code", 0)
        return dict.fromkeys(recipients, Outcome("temporary", 0, f"{type(exc).__name__} {code or ''}".strip()))
    return {r: classify(*refused[r]) if r in refused else OK for r in recipients}


def envelope_sender(message: Message) -> str:
    if message.is_report:
        return ""  # RFC 3464 / 8098: reports travel with the null reverse-path
    if message.envelope_from:
        return message.envelope_from
    return message.sender_mailbox.address if message.sender_mailbox_id else ""


def trace_line(message: Message) -> bytes:
    """Our `Received:` line in front of what the relay sends (RFC 5321 §4.4: every server that
    passes a message on adds one), so that the hops of a message that loops between operators
    add up and the hop limit stops it (`SMTP_HOP_LIMIT`). Its time is when the message came in
    here, so every attempt sends the same bytes."""
    host = "".join(c for c in (settings.RELAY_HELO_NAME or reports.reporting_host()) if 33 <= ord(c) < 127)
    received = f"Received: by {host[:255] or 'localhost'} (MSSante) id {envelope_id(message)};"
    when = format_datetime(timezone.localtime(message.created_at))
    return f"{received}\r\n\t{when}\r\n".encode("ascii")


READ_CHUNK = 1024 * 1024


def read_raw(message: Message) -> bytes:
    """What the relay sends: our trace line, then the stored bytes, read in pieces into one
    buffer (a 25 MB message is never held twice)."""
    raw = bytearray(trace_line(message))
    with store.open_raw(message) as handle:
        for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
            raw += chunk
    # SMTP wants CRLF line ends; messages built in Python may carry bare LF.
    if BARE_LF_RE.search(raw):
        return re.sub(rb"\r?\n", b"\r\n", raw)
    return raw  # a bytearray: smtplib takes it as it takes bytes


def backoff_seconds(attempts: int) -> int:
    base = settings.RELAY_RETRY_BASE_SECONDS
    return min(settings.RELAY_RETRY_MAX_SECONDS, base * 2 ** max(0, attempts - 1))


def claim(outbox_id: int) -> bool:
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1))
    return bool(
        Outbox.objects.filter(due, pk=outbox_id, status=Outbox.Status.PENDING).update(
            status=Outbox.Status.SENDING, attempts=F("attempts") + 1, updated_at=now
        )
    )


def send_outbox(outbox_id: int) -> int | None:
    """Try to relay one Outbox row. Returns the seconds before the next attempt when it must be
    retried, else None (sent, failed for good, or not ours to send)."""
    if not claim(outbox_id):
        log.info("relay outbox=%s not claimed (done, taken or not due)", outbox_id)
        return None
    row = Outbox.objects.select_related("message", "message__sender_mailbox").get(pk=outbox_id)
    message = row.message
    recipients = list(row.recipients)
    try:
        raw = read_raw(message)
    except Exception:
        log.exception("relay outbox=%s message=%s raw unreadable", row.pk, message.pk)
        outcomes = dict.fromkeys(recipients, Outcome("temporary", 0, "stored message unreadable"))
    else:
        outcomes = transmit(envelope_sender(message), recipients, raw, envelope_id(message))
        del raw
    return record_outcomes(row, outcomes)


def record_outcomes(row: Outbox, outcomes: dict[str, Outcome]) -> int | None:
    message = row.message
    now = timezone.now()
    accepted = [r for r, o in outcomes.items() if o.kind == "ok"]
    permanent = {r: o for r, o in outcomes.items() if o.kind == "permanent"}
    temporary = {r: o for r, o in outcomes.items() if o.kind == "temporary"}
    if temporary and now - row.created_at >= timedelta(seconds=settings.RELAY_RETRY_WINDOW_SECONDS):
        for r, o in temporary.items():
            permanent[r] = Outcome("permanent", o.code, f"4.4.7 delivery time expired ({o.text})".strip())
        temporary = {}
    retry_in = None
    with transaction.atomic():
        if accepted:
            record_relayed(row, accepted, now)
        if permanent:
            record_bounced(row, permanent, now)
        last = next(iter(temporary.values() or permanent.values()), None)
        last_error = (f"{last.code} {last.text}" if last and last.code else (last.text if last else ""))[:300]
        if temporary:
            retry_in = backoff_seconds(row.attempts)
            events.record(
                "message.relay_deferred",
                actor_label="relay",
                object_type="outbox",
                object_id=row.pk,
                message_id=message.pk,
                mailbox_id=message.sender_mailbox_id,
                outcome="deferred",
                detail={"recipients": len(temporary), "attempt": row.attempts, "code": last.code if last else 0},
            )
            updated = Outbox.objects.filter(pk=row.pk, status=Outbox.Status.SENDING).update(
                status=Outbox.Status.PENDING,
                recipients=list(temporary),
                next_attempt_at=now + timedelta(seconds=retry_in),
                last_error=last_error,
                updated_at=now,
            )
        else:
            final = Outbox.Status.SENT if accepted or not permanent else Outbox.Status.FAILED
            # "pending" too: the sweeper may have taken the row back while this send was slow.
            updated = Outbox.objects.filter(
                pk=row.pk, status__in=[Outbox.Status.SENDING, Outbox.Status.PENDING]
            ).update(status=final, next_attempt_at=None, last_error=last_error, updated_at=now)
        if permanent and updated and not (message.is_report or message.auto_submitted):
            reports.send_dsn(message, [(r, o.status, o.diagnostic) for r, o in permanent.items()])
    log.info(
        "relay outbox=%s message=%s attempt=%s accepted=%s permanent=%s temporary=%s",
        row.pk,
        message.pk,
        row.attempts,
        len(accepted),
        len(permanent),
        len(temporary),
    )
    return retry_in


def record_relayed(row: Outbox, accepted: list[str], now) -> None:
    """The recipients the peer accepted: relayed, and one audit event naming them by their
    Delivery ids (ids only: the API's status and webhooks name each recipient from them,
    mailboxes/delivery/history.py)."""
    relayed = Delivery.objects.filter(message=row.message, address__in=accepted)
    ids = sorted(relayed.values_list("pk", flat=True))
    relayed.update(status=Delivery.Status.RELAYED, reason="smtp_250", updated_at=now)
    events.record(
        "message.relayed",
        actor_label="relay",
        object_type="outbox",
        object_id=row.pk,
        message_id=row.message.pk,
        detail={"recipients": len(accepted), "attempt": row.attempts, "deliveries": ids},
    )


def record_bounced(row: Outbox, permanent: dict[str, Outcome], now) -> None:
    """The recipients refused for good: bounced with their SMTP code, one audit event naming
    them as `record_relayed` does."""
    ids = sorted(Delivery.objects.filter(message=row.message, address__in=list(permanent)).values_list("pk", flat=True))
    for address, outcome in permanent.items():
        Delivery.objects.filter(message=row.message, address=address).update(
            status=Delivery.Status.BOUNCED, reason=f"smtp_{outcome.code or 'expired'}"[:60], updated_at=now
        )
    events.record(
        "message.bounced",
        actor_label="relay",
        object_type="outbox",
        object_id=row.pk,
        message_id=row.message.pk,
        outcome="failed",
        detail={
            "recipients": len(permanent),
            "codes": sorted({o.status for o in permanent.values()}),
            "deliveries": ids,
        },
    )


def sweep_outbox() -> dict[str, int]:
    """Put back in line what a lost task or a killed worker left behind; enqueue what is due."""
    now = timezone.now()
    stuck_before = now - timedelta(seconds=settings.RELAY_SENDING_TIMEOUT_SECONDS)
    grace = timedelta(seconds=settings.RELAY_SWEEP_GRACE_SECONDS)
    stuck_ids = list(
        Outbox.objects.filter(status=Outbox.Status.SENDING, updated_at__lt=stuck_before).values_list("pk", flat=True)[
            :SWEEP_BATCH
        ]
    )
    stuck = 0
    if stuck_ids:
        stuck = Outbox.objects.filter(
            pk__in=stuck_ids, status=Outbox.Status.SENDING, updated_at__lt=stuck_before
        ).update(
            status=Outbox.Status.PENDING, next_attempt_at=now, updated_at=now, last_error="worker lost during send"
        )
    due = Q(next_attempt_at__isnull=True, updated_at__lte=now - grace) | Q(next_attempt_at__lte=now - grace)
    if stuck:
        due |= Q(pk__in=stuck_ids)
    pending_ids = list(
        Outbox.objects.filter(due, status=Outbox.Status.PENDING)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for outbox_id in pending_ids:
        transaction.on_commit(lambda outbox_id=outbox_id: outbox.enqueue(outbox_id))
    if stuck or pending_ids:
        log.info("relay sweep: stuck=%s requeued=%s", stuck, len(pending_ids))
    return {"pending": len(pending_ids) - stuck, "stuck": stuck}
