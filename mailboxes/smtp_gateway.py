"""Inbound SMTP gateway: mail from other MSSanté operators enters through here (issue 3 item 5).

RULES.md §1 (trust space: only hosted domains and trusted operator domains), §3 (patient
domain: the policy's refusal is the SMTP refusal, in French) and §5 (TLS 1.2 with the four
ECDHE-RSA AES-GCM/CBC suites, plaintext refused where TLS is configured).

The SMTP dialogue runs on asyncio (aiosmtpd); every decision is taken by the delivery path
(`mailboxes.delivery`): `check_sender` at MAIL FROM, `check_recipient` at RCPT TO and
`send_message` at the end of DATA. The Django ORM is synchronous, so those calls run in a pool of
threads, each keeping its database connection between messages.

Replies: `250` only once `send_message` has returned (its transaction committed); a refusal by
a rule is a `5xx` saying why; anything unexpected (database down, a bug) is `451 4.3.0`, so the
peer keeps the message and retries: a temporary problem never loses mail. Logs carry ids and
codes, never an address, a subject or a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import os
import re
import signal
import ssl
import threading
import time
import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import format_datetime

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, TLSSetupException, syntax
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from mailboxes import delivery, reports
from mailboxes.fanout import deliver_one_per_patient
from mssante.db import kept_connection_call
from mssante.metrics import SMTP_SESSIONS

log = logging.getLogger("mailboxes.smtp")

TEMPORARY_FAILURE = "451 4.3.0 Erreur temporaire du serveur, merci de reessayer plus tard"
STARTTLS_FIRST = "530 5.7.0 Chiffrement obligatoire : envoyez STARTTLS avant cette commande"
# aiosmtpd counts dot-stuffed lines as received; the exact limit on the encoded message is the
# delivery path's (`too_large`). The slack only caps the memory a peer can make us hold.
SIZE_SLACK = 64 * 1024


def max_message_bytes() -> int:
    """The largest message any rule may accept: the mailbox limit or the patient domain's."""
    return delivery.largest_message()


def advertised_size() -> int:
    """The largest message the gateway reads (EHLO SIZE, RFC 1870): up to
    SMTP_OVERSIZE_RETURN_MAX_BYTES, so that a message to patients over their limit comes in and
    gets the policy's automatic return (`GatewayHandler.handle_oversized`); never below
    `max_message_bytes()`."""
    return max(max_message_bytes(), settings.SMTP_OVERSIZE_RETURN_MAX_BYTES)


TYPOGRAPHY = [
    ("\u00a0", " "),
    ("\u202f", " "),
    ("« ", '"'),
    (" »", '"'),
    ("«", '"'),
    ("»", '"'),
    ("’", "'"),
    ("–", "-"),
    ("—", "-"),
    ("…", "..."),
]


def ascii_text(text: str) -> str:
    """SMTP replies are ASCII unless SMTPUTF8 was negotiated: keep the French, drop the accents."""
    for typographic, plain in TYPOGRAPHY:
        text = text.replace(typographic, plain)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return " ".join(folded.replace("\r", " ").replace("\n", " ").split())[:400]


def refusal_reply(code: str, reason: str, smtp_code: int | None = None) -> str:
    base_code, enhanced = delivery.reply_code(code)
    smtp_code = smtp_code or base_code
    if smtp_code // 100 == 4:
        enhanced = "4" + enhanced[1:]
    elif enhanced[0] != "5":
        enhanced = "5" + enhanced[1:]
    return f"{smtp_code} {enhanced} {ascii_text(reason) or 'Refuse'}"


def too_large_reply(limit: int) -> str:
    return f"552 5.3.4 Message trop volumineux : la taille maximale est de {limit} octets"


# RFC 2034 (ENHANCEDSTATUSCODES, advertised in EHLO): every 2xx, 4xx and 5xx reply carries an
# RFC 3463 enhanced status code, except the greeting and the answer to HELO/EHLO. Our own replies
# have theirs; aiosmtpd's own (aiosmtpd 1.4.6, smtp.py) get one here, by the start of their text,
# in `push`, the one place replies leave. First match wins; an unlisted reply gets X.0.0.
AIOSMTPD_ENHANCED_CODES: tuple[tuple[str, str], ...] = (
    ("250 OK", "2.0.0"),  # NOOP, RSET (MAIL and RCPT are answered by the handlers: 2.1.0, 2.1.5)
    ("220 Ready to start TLS", "2.0.0"),  # STARTTLS
    ("221 Bye", "2.0.0"),  # QUIT
    ("500 Error: command ", "5.5.2"),  # unknown command (and AUTH after HELO)
    ("500 Error: bad syntax", "5.5.2"),  # empty line, non-ASCII command name
    ("500 Error: strict ASCII mode", "5.5.2"),  # 8-bit bytes in a command, SMTPUTF8 not offered
    ("500 Command line too long", "5.5.2"),
    ("500 Line too long", "5.6.0"),  # a line of the message over 1,000 octets (end of DATA)
    ("501 Syntax: ", "5.5.4"),  # a known command with wrong arguments (QUIT x, RSET x, DATA x...)
    ("501 Error: ", "5.5.4"),  # MAIL's BODY= and SMTPUTF8 parameters
    ("501 ", "5.5.4"),  # AUTH without or with too many arguments, HELP of an unknown command
    ("502 EXPN not implemented", "5.5.1"),
    ("502 Could not VRFY", "5.5.4"),
    ("503 ", "5.5.1"),  # bad sequence: HELO first, MAIL first, RCPT first, nested MAIL, AUTH twice
    ("530 Must issue a STARTTLS", "5.7.0"),
    ("454 TLS not available", "4.7.0"),
    ("554 Command refused due to lack of security", "5.7.0"),  # after a failed TLS handshake
    ("555 ", "5.5.4"),  # MAIL/RCPT parameters not recognised
    ("552 ", "5.3.4"),
)
HAS_ENHANCED_CODE = re.compile(r"[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")


def with_enhanced_code(status: str, hostname: str) -> str:
    """`status` with an RFC 3463 enhanced status code after its reply code, unless it has one,
    is a 1xx/3xx (354, an AUTH challenge) or is the greeting or the answer to HELO/EHLO (RFC 2034
    §3: `220 <host> ...`, `250 <host>`, EHLO's lines: the only multi-line reply of aiosmtpd,
    `250-...` then `250 HELP`)."""
    if status[:1] not in ("2", "4", "5") or status[3:4] == "-" or HAS_ENHANCED_CODE.match(status):
        return status
    if status in ("250 HELP", f"250 {hostname}") or (status.startswith("220 ") and status != "220 Ready to start TLS"):
        return status
    code = next((code for prefix, code in AIOSMTPD_ENHANCED_CODES if status.startswith(prefix)), f"{status[0]}.0.0")
    text = status[4:]
    return f"{status[:3]} {code}{' ' + text if text else ''}"


def session_error_reply(error: Exception, logger: logging.Logger, server: str) -> str:
    """The answer to an error aiosmtpd caught in a session (its `handle_exception` hook), for
    the gateway and the submission server. A failed TLS handshake (a peer without the MSSanté
    suites, a port scanner) is one warning line, never a traceback; anything else (the database
    down during AUTH, a bug) is logged with its traceback and answered as a temporary failure,
    never with the error's text (aiosmtpd's own answer is a permanent `500` that quotes it)."""
    if isinstance(error, TLSSetupException):
        cause = error.__cause__
        reason = getattr(cause, "reason", None) or type(cause or error).__name__
        logger.warning("%s tls handshake failed: %s", server, reason)
        return "421 4.7.0 Echec de la negociation TLS"
    logger.error("%s session error: %s", server, type(error).__name__, exc_info=error)
    return TEMPORARY_FAILURE


def declared_size(mail_options: list[str]) -> int | None:
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


class DecisionCache:
    """MAIL and RCPT decisions for a few seconds (SMTPD_DECISION_CACHE_SECONDS), per process.

    Only the early answers are cached: at the end of DATA, `send_message` decides every
    recipient again from the database, so a stale entry can delay a refusal to DATA, never
    deliver what the rules refuse."""

    MAX_ITEMS = 10_000

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.items: dict = {}

    def get(self, key):
        item = self.items.get(key)
        if item is not None and item[0] > time.monotonic():
            return item[1]
        return None

    def put(self, key, decision) -> None:
        if self.ttl <= 0:
            return
        if len(self.items) >= self.MAX_ITEMS:
            self.items.clear()
        self.items[key] = (time.monotonic() + self.ttl, decision)


class GatewayHandler:
    """aiosmtpd hooks: MAIL, RCPT and DATA answered by the delivery path."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or settings.SMTPD_WORKERS
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="smtpd-orm")
        self.max_bytes = max_message_bytes()
        self.cap = advertised_size()
        self.decisions = DecisionCache(settings.SMTPD_DECISION_CACHE_SECONDS)

    async def _decide(self, key, fn, *args):
        decision = self.decisions.get(key)
        if decision is None:
            decision = await self._run(fn, *args)
            self.decisions.put(key, decision)
        return decision

    def close(self) -> None:
        """Close the database connection of every pool thread, then stop the pool."""
        workers = self.workers
        barrier = threading.Barrier(workers)

        def close_here():
            # Each job waits for the others, so every thread of the pool runs exactly one.
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
            connections.close_all()

        for future in [self.executor.submit(close_here) for _ in range(workers)]:
            future.result()
        self.executor.shutdown(wait=True)

    async def _run(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(kept_connection_call, fn, *args, **kwargs))

    async def handle_exception(self, error):
        return session_error_reply(error, log, "smtp")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # Advertise what we read, not aiosmtpd's memory cap (which includes a small slack): up to
        # the oversize-return cap, so a peer sends a message too large for a patient at all and
        # gets the policy's automatic return; RCPT refuses a professional a declared size over
        # the mailbox limit (`check_declared_size`).
        responses = [f"250-SIZE {self.cap}" if r.startswith("250-SIZE") else r for r in responses]
        # RFC 2920: commands sent in a group are read in turn (DATA reads no further than its
        # final dot), so a peer may pipeline MAIL and its RCPTs instead of a round trip each.
        # RFC 2034: every reply after EHLO carries an enhanced status code (`push`).
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        size = declared_size(mail_options)
        if size is not None and size > self.cap:
            log.info("smtp refused at MAIL: declared size %s over %s", size, self.cap)
            return too_large_reply(self.cap)
        try:
            sender = envelope_sender(address)
            decision = await self._decide(("mail", sender), delivery.check_sender, sender)
        except Exception:
            log.exception("smtp temporary failure at MAIL")
            return TEMPORARY_FAILURE
        if not decision.deliver:
            log.info("smtp refused at MAIL: %s", decision.code)
            return refusal_reply(decision.code, decision.reason)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= settings.SMTPD_MAX_RECIPIENTS:
            return "452 4.5.3 Trop de destinataires pour ce message"
        sender = envelope_sender(envelope.mail_from)
        # RFC 1870: a declared size over the mailbox limit is refused now for a professional.
        decision = delivery.check_declared_size(sender, address, declared_size(envelope.mail_options))
        if not decision.deliver:
            log.info("smtp refused at RCPT: %s (declared size)", decision.code)
            return refusal_reply(decision.code, decision.reason)
        try:
            decision = await self._decide(("rcpt", sender, address), delivery.check_recipient, sender, address)
        except Exception:
            log.exception("smtp temporary failure at RCPT")
            return TEMPORARY_FAILURE
        if not decision.deliver:
            log.info("smtp refused at RCPT: %s", decision.code)
            return refusal_reply(decision.code, decision.reason)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        # Keep one reference to the bytes: the envelope's two attributes point at the same object.
        raw = envelope.original_content
        envelope.original_content = envelope.content = None
        if len(raw) > self.max_bytes:
            return await self.handle_oversized(server, session, envelope, header_block(raw), len(raw))
        sender = envelope_sender(envelope.mail_from)
        trace_id = uuid.uuid4().hex[:16]
        trace = trace_headers(server, session, sender, list(envelope.rcpt_tos), trace_id)
        try:
            result = await self._run(deliver_inbound, raw, sender, list(envelope.rcpt_tos), trace)
        except delivery.DeliveryRefused as exc:
            return refused_at_data(exc, sender, trace_id)
        except Exception:
            log.exception("smtp temporary failure at DATA")
            return TEMPORARY_FAILURE
        finally:
            del raw
        message = result.primary.message
        log.info(
            "smtp accepted message=%s id=%s copies=%s delivered=%s queued=%s refused=%s",
            message.pk,
            trace_id,
            len(result.results),
            sum(len(r.delivered) for r in result.results),
            sum(len(r.queued) for r in result.results),
            len(result.refused),
        )
        return f"250 2.0.0 OK message {message.pk}"

    def keep_limit(self, envelope: Envelope) -> int:
        """How much of the message DATA keeps (`read_message`): what a box may take, plus the
        slack of dot-stuffing; only the head when the peer declared a size over that."""
        if (declared_size(envelope.mail_options) or 0) > self.max_bytes:
            return 0
        return self.max_bytes + SIZE_SLACK

    async def handle_oversized(self, server, session, envelope, head: bytes, size: int) -> str:
        """A message over every limit, of which `head` (its header block) was kept: the delivery
        path refuses it, with the patient domain's automatic returns when only patients
        receive it (`delivery.oversized_refusal`); nothing is stored."""
        sender = envelope_sender(envelope.mail_from)
        if size <= self.max_bytes:  # declared over the limit, smaller in fact: its body was not kept
            log.info("smtp refused at DATA: declared size over %s", self.max_bytes)
            return too_large_reply(self.max_bytes)
        log.info("smtp oversized message: size %s over %s", size, self.max_bytes)
        trace_id = uuid.uuid4().hex[:16]
        refused = functools.partial(
            delivery.oversized_refusal, envelope_from=sender, envelope_to=list(envelope.rcpt_tos), source="smtp"
        )
        try:
            refusal = await self._run(refused, head, size)
        except Exception:
            log.exception("smtp temporary failure at DATA")
            return TEMPORARY_FAILURE
        return refused_at_data(refusal, sender, trace_id)


def refused_at_data(refusal: delivery.DeliveryRefused, sender: str, trace_id: str) -> str:
    """The reply to a message refused at the end of DATA: 250 when the patient domain's
    automatic returns answer it (`answered_by_returns`), else the refusal."""
    if answered_by_returns(refusal, sender):
        log.info("smtp answered by automatic returns: %s id=%s", refusal.code, trace_id)
        return "250 2.0.0 OK, non distribue : un retour automatique est envoye a l'expediteur"
    log.info("smtp refused at DATA: %s", refusal.code)
    return refusal_reply(refusal.code, refusal.reason, refusal.smtp_code)


def _trace_text(value: str) -> str:
    """A peer-given name inside our trace line: printable ASCII, no parentheses or brackets."""
    text = "".join(c if 33 <= ord(c) < 127 and c not in "()[]<>;" else "?" for c in (value or ""))
    return text[:255] or "unknown"


def trace_headers(server, session, sender: str, recipients: list[str], trace_id: str) -> bytes:
    """`Return-Path:` and our `Received:` line (RFC 5321 §4.4): the peer's EHLO name and IP, the
    TLS protocol and cipher, our name, our id for this transaction, the time. The stored message
    is what the peer sent with these lines in front (docs/smtp.md)."""
    peer_ip = session.peer[0] if session.peer else "unknown"
    lines = [f"from {_trace_text(session.host_name)} ([{_trace_text(peer_ip)}])"]
    ssl_object = server.transport.get_extra_info("ssl_object") if server.transport is not None else None
    protocol = "ESMTP"
    if ssl_object is not None:
        cipher, _version, bits = ssl_object.cipher() or ("unknown", "", 0)
        lines.append(f"(using {ssl_object.version()} with cipher {cipher} ({bits}/{bits} bits))")
        protocol = "ESMTPS"
    lines.append(f"by {_trace_text(server.hostname)} (MSSante) with {protocol} id {trace_id}")
    if len(recipients) == 1:
        lines.append(f"for <{recipients[0]}>; {format_datetime(timezone_now())}")
    else:
        lines[-1] += f"; {format_datetime(timezone_now())}"
    received = "Received: " + "\r\n\t".join(lines)
    return f"Return-Path: <{sender}>\r\n{received}\r\n".encode("ascii", "replace")


def timezone_now():
    return datetime.datetime.now(datetime.UTC).astimezone()


def answered_by_returns(refusal: delivery.DeliveryRefused, sender: str) -> bool:
    """Every recipient was refused by the patient-domain policy with an automatic return, which
    the policy has sent to the sender (RULES.md §3): the message is answered, so the peer gets a
    250 and no bounce of its own on top of the return. A 4xx stays a 4xx."""
    return (
        bool(sender)
        and refusal.smtp_code // 100 == 5
        and bool(refusal.refused)
        and all(decision.automatic_return for decision in refusal.refused.values())
    )


def deliver_inbound(raw: bytes, sender: str, recipients: list[str], trace: bytes = b""):
    """`send_message` for mail from another operator, one copy per patient when it reaches or
    names several (`mailboxes.fanout.deliver_one_per_patient`: no patient's copy names another
    patient, RULES.md §3). A recipient accepted at RCPT but refused
    once the message is known (over quota, too large for that box) is told to the sender by a
    non-delivery report relayed back, since the 250 made us responsible for it. The
    patient-domain policy answers its own refusals (automatic returns)."""
    outcome = deliver_one_per_patient(raw, envelope_from=sender, envelope_to=recipients, source="smtp", trace=trace)
    message = outcome.primary.message
    late = {address: d for address, d in outcome.refused.items() if not d.automatic_return}
    if late and sender and reports.may_answer(message):
        failures = [
            (address, delivery.reply_code(d.code)[1], refusal_reply(d.code, d.reason)) for address, d in late.items()
        ]
        dsn = reports.build_dsn(message, failures, reports.reporting_host())
        try:
            delivery.send_message(dsn, envelope_from="", envelope_to=[sender], source="system")
        except Exception:
            # The message itself is committed: answering 4xx now would make the peer send it twice.
            log.exception("smtp late refusal report failed: message=%s", message.pk)
    return outcome


def envelope_sender(address: str | None) -> str:
    """The null reverse-path `<>` (bounces, MDNs) is the empty sender."""
    address = address or ""
    return "" if address.strip() in ("<>", "") else address


# The common forms of MAIL and RCPT, which the gateway answers without aiosmtpd's parser of
# RFC 5322 addresses (`email._header_value_parser`, about 50 µs a command): an address in angle
# brackets whose local part is a dot-atom of RFC 5322 `atext` (not starting "=?", which that parser
# may read as an encoded word) and whose domain is dot-separated letters, digits and hyphens; for
# those, aiosmtpd's parser gives back the same text. Anything else goes to aiosmtpd's own command.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
COMMON_ADDRESS = rf"(?!=\?){ATEXT}(?:\.{ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
COMMON_MAIL = re.compile(rf"FROM:[ \t]*<({COMMON_ADDRESS})?>((?: +[A-Za-z0-9=]+)*)", re.IGNORECASE | re.ASCII)
COMMON_RCPT = re.compile(rf"TO:[ \t]*<({COMMON_ADDRESS})>", re.IGNORECASE | re.ASCII)
BODY_TYPES = ("7BIT", "8BITMIME")


def common_mail_options(options: str, accepts_body: bool) -> tuple[list[str], int] | None:
    """The MAIL parameters (upper-cased, as aiosmtpd passes them on) and the declared size (0
    when none), when they are at most one SIZE=<digits> and one BODY=7BIT or 8BITMIME; None for
    anything else, which aiosmtpd's own MAIL answers."""
    mail_options = options.upper().split()
    size, names = 0, set()
    for option in mail_options:
        name, _, value = option.partition("=")
        if name in names:
            return None
        names.add(name)
        if name == "SIZE" and value.isdigit():
            size = int(value)
        elif not (name == "BODY" and accepts_body and value in BODY_TYPES):
            return None
    return mail_options, size


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes on all its replies (`push`), and a DATA command
    (aiosmtpd's documented way to implement a command: an `smtp_DATA` method with `@syntax`) that
    gathers the message in one growing buffer instead of one object per line: a 25 MB message in
    78-byte lines is 330,000 objects, and aiosmtpd's own DATA took the gateway's peak memory to
    4.0x the message against 2.0x with this one (bench/RESULTS.md, issue 13). Its line and size
    limits and replies are aiosmtpd's; the handler is called and the envelope reset through public
    names (`event_handler`, `Envelope`); only the stream is read as aiosmtpd's own DATA reads it."""

    def __init__(self, handler, *, decode_data: bool = False, **kwargs) -> None:
        # aiosmtpd takes `BODY=` at MAIL only when it hands the data on undecoded.
        self.accepts_body = not decode_data
        super().__init__(handler, decode_data=decode_data, **kwargs)

    def connection_made(self, transport) -> None:
        SMTP_SESSIONS.inc()  # /metrics (mssante/metrics.py)
        self.held_reply_lines: list[str] = []
        super().connection_made(transport)

    async def push(self, status):
        """Our own wording for aiosmtpd's bare replies, an enhanced status code on every reply
        that needs one (`with_enhanced_code`), and a multi-line reply (EHLO) written in one
        piece: its `250-` lines are held until the last line comes."""
        if isinstance(status, str):
            if status.startswith("552 Error:"):
                status = too_large_reply(advertised_size())
            elif status.startswith("530 Must issue a STARTTLS"):
                status = STARTTLS_FIRST
            elif status[:4] in ("250-", "220-", "214-"):
                self.held_reply_lines.append(status)
                return
            if self.held_reply_lines:
                status = "\r\n".join([*self.held_reply_lines, status])
                self.held_reply_lines = []
            else:
                status = with_enhanced_code(status, self.hostname)
        await super().push(status)

    # MAIL and RCPT (issue 17): the common forms are answered here with aiosmtpd's checks and
    # replies in aiosmtpd's order, through its public names only: `check_helo_needed`,
    # `check_auth_needed`, `session.extended_smtp`, `envelope` (mail_from, smtp_utf8),
    # `data_size_limit`, `local_part_limit`, `event_handler` and its documented `handle_MAIL` /
    # `handle_RCPT` hooks, `push`. Whatever else (another form, a nested MAIL, a declared size
    # over the limit, RCPT before MAIL, no hook) is aiosmtpd's own command, `super().smtp_MAIL`.
    # Unlike aiosmtpd's, they do not log the address at INFO (its logger is kept at WARNING here:
    # `quiet_aiosmtpd_log`).

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        common = COMMON_MAIL.fullmatch(arg) if arg else None
        parsed = common_mail_options(common[2], self.accepts_body) if common else None
        handle_mail = getattr(self.event_handler, "handle_MAIL", None)
        if (
            parsed is None
            or handle_mail is None
            or self.envelope.mail_from
            or (parsed[0] and not self.session.extended_smtp)
            or (self.data_size_limit and parsed[1] > self.data_size_limit)
            or not self.within_local_part_limit(common[1])
        ):
            await super().smtp_MAIL(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        address = common[1] or "<>"  # aiosmtpd's parser gives the null reverse-path as "<>"
        self.envelope.smtp_utf8 = False
        await self.push(await handle_mail(self, self.session, self.envelope, address, parsed[0]))

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        common = COMMON_RCPT.fullmatch(arg) if arg else None
        handle_rcpt = getattr(self.event_handler, "handle_RCPT", None)
        if (
            common is None
            or handle_rcpt is None
            or not self.envelope.mail_from
            or not self.within_local_part_limit(common[1])
        ):
            await super().smtp_RCPT(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        await self.push(await handle_rcpt(self, self.session, self.envelope, common[1], []))

    def within_local_part_limit(self, address: str | None) -> bool:
        return not (address and self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # The handler is this gateway's own (`GatewayHandler`, which always answers DATA).
        handler = self.event_handler
        try:
            data = await read_message(
                self._reader, self.line_length_limit, self.data_size_limit, handler.keep_limit(self.envelope)
            )
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if data.state in ("too_long", "too_much"):
            self.envelope = Envelope()
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)" if data.state == "too_long" else "552 Error:")
            return
        if data.state == "oversize":
            status = await handler.handle_oversized(
                self, self.session, self.envelope, header_block(data.raw), data.size
            )
        else:
            self.envelope.content = self.envelope.original_content = data.raw
            del data
            status = await handler.handle_DATA(self, self.session, self.envelope)
        self.envelope = Envelope()
        await self.push(status)


END_OF_DATA = b"\r\n.\r\n"


# How much of a message over the limits is kept: the start, which holds its header block.
HEAD_BYTES = 256 * 1024
HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class MessageData:
    """What one DATA command brought: `raw`, the message (dot-unstuffed), or only its first
    `head_bytes` when `state` is "oversize"; `size`, the length of the whole unstuffed message
    ("ok" and "oversize"); `state`: "ok", "oversize" (over `keep_limit`: the rest was counted,
    not kept), "too_long" or "too_much" (nothing kept)."""

    raw: bytes
    state: str
    size: int


async def read_message_data(reader: asyncio.StreamReader, line_limit: int, size_limit: int | None) -> tuple[bytes, str]:
    """The message of one DATA command, dot-unstuffed (RFC 5321 §4.5.2), and "ok", "too_long"
    (a line over `line_limit` bytes, CRLF included) or "too_much" (over `size_limit`); what
    follows the final `.` line stays in `reader` (a pipelining peer's next command)."""
    data = await read_message(reader, line_limit, size_limit)
    return data.raw, data.state


async def read_message(
    reader: asyncio.StreamReader,
    line_limit: int,
    size_limit: int | None,
    keep_limit: int | None = None,
    head_bytes: int = HEAD_BYTES,
) -> MessageData:
    """`read_message_data`, and past `keep_limit` bytes received the "oversize" state: from
    there only the first `head_bytes` of the message are kept and the rest is counted, so the
    memory held does not grow with what is dropped (a message no box takes, answered from its
    header block alone). `keep_limit` 0: the head only from the start.

    Read in pieces, not line by line (issue 17: 2,000 awaits for a 139 KB message were a good
    part of the gateway's CPU): `readuntil(b".\r\n")` returns the bytes up to a line ending in a
    dot, or, when none is buffered, says how many bytes can be taken without reaching one
    (`LimitOverrunError.consumed`), which `readexactly` then takes; the last two bytes read
    before each piece tell whether its dot starts a line (the end of data) or ends one."""
    buffer = bytearray()
    state, received, size, line_length = "ok", 0, 0, 0
    tail = b"\r\n"  # the message starts at the start of a line
    while True:
        try:
            piece = await reader.readuntil(b".\r\n")
        except asyncio.LimitOverrunError as exc:
            piece = await reader.readexactly(exc.consumed)
        # The end: a line that is a dot alone; its CRLF before may be in the bytes read before.
        end = piece.endswith(b".\r\n") and (tail + piece[-5:]).endswith(END_OF_DATA)
        next_tail = (tail + piece[-2:])[-2:]
        if end:
            piece = piece[:-3]
        received += len(piece)
        line_length, too_long = line_lengths(piece, line_length, line_limit, after_cr=tail.endswith(b"\r"))
        if state in ("ok", "oversize") and too_long:
            state, buffer = "too_long", bytearray()
        elif state in ("ok", "oversize") and size_limit and received > size_limit:
            state, buffer = "too_much", bytearray()
        elif state == "ok" and keep_limit is not None and received > keep_limit:
            state, buffer = "oversize", bytearray(buffer[:head_bytes])
        if state in ("ok", "oversize"):
            text = unstuffed(piece, tail)
            size += len(text)
            if state == "ok":
                buffer += text
            elif len(buffer) < head_bytes:
                buffer += text[: head_bytes - len(buffer)]
            del text
        if end:
            break
        tail = next_tail
    raw = bytes(buffer)
    del buffer
    return MessageData(raw, state, size)


def header_block(data: bytes) -> bytes:
    """The header block of a message (up to its first empty line, included), b"" when `data`
    holds none (a header block longer than what was kept cannot be read)."""
    end = HEADER_END.search(data)
    return data[: end.end()] if end else b""


def unstuffed(piece: bytes, tail: bytes) -> bytes:
    """`piece` with the first dot of each of its lines removed (RFC 5321 §4.5.2); `tail`, the
    two bytes before it, says whether it starts a line."""
    if tail.endswith(b"\r\n") and piece.startswith(b"."):
        piece = piece[1:]
    elif tail.endswith(b"\r") and piece.startswith(b"\n."):
        piece = b"\n" + piece[2:]
    return piece.replace(b"\r\n.", b"\r\n") if b"\r\n." in piece else piece


def line_lengths(piece: bytes, carried: int, limit: int, after_cr: bool = False) -> tuple[int, bool]:
    """(length of the line left open at the end of `piece`, whether a line of more than `limit`
    bytes, its CRLF included, ends or runs in it); `carried`: the open line's length before;
    `after_cr`: the bytes before `piece` end with a CR, so a LF first ends the open line (a CRLF
    that the network cut in two)."""
    if after_cr and piece.startswith(b"\n"):
        open_length, too_long = line_lengths(piece[1:], 0, limit)
        return open_length, too_long or carried + 1 > limit
    first = piece.find(b"\r\n")
    if first < 0:
        return carried + len(piece), carried + len(piece) > limit
    last = piece.rfind(b"\r\n")
    open_length = len(piece) - last - 2
    if carried + first + 2 > limit or open_length > limit:
        return open_length, True
    if last - first <= limit:  # no room for a long line between the first and the last CRLF
        return open_length, False
    # The lines between: split in C, one pass (a search line by line in Python costs more).
    longest = max(map(len, piece[first + 2 : last].split(b"\r\n")))
    return open_length, longest + 2 > limit


def tls_context() -> ssl.SSLContext | None:
    """The listener's TLS settings (RULES.md §5), or None when no certificate is configured."""
    if not (settings.SMTPD_TLS_CERT and settings.SMTPD_TLS_KEY):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.SMTPD_TLS_MAX_VERSION == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(settings.SMTPD_TLS_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    load_certificate(context, "SMTPD_TLS_CERT", "SMTPD_TLS_KEY")
    return context


def load_certificate(context: ssl.SSLContext, cert_setting: str, key_setting: str) -> None:
    """Load the certificate and key the two settings name, or stop the start-up with a message
    that names the setting and the path at fault (OpenSSL's own says neither: "No such file or
    directory", "PEM lib")."""
    cert, key = getattr(settings, cert_setting), getattr(settings, key_setting)
    for name, path in ((cert_setting, cert), (key_setting, key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}={path!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ImproperlyConfigured(
            f"{cert_setting}={cert!r} and {key_setting}={key!r} are not a PEM certificate (chain) and "
            f"its private key, or the key does not match the certificate (OpenSSL: {exc.reason or exc})"
        ) from exc


def smtp_kwargs() -> dict:
    context = tls_context()
    return {
        "data_size_limit": advertised_size() + SIZE_SLACK,
        "hostname": settings.SMTPD_HOSTNAME or None,
        "ident": "MSSante SMTP",
        "tls_context": context,
        "require_starttls": bool(context) and settings.SMTPD_REQUIRE_TLS,
        "timeout": settings.SMTPD_TIMEOUT,
        "decode_data": False,
        "enable_SMTPUTF8": False,
    }


class GatewayController(Controller):
    """The gateway in a background thread with its own event loop (tests, embedded runs)."""

    def __init__(self, host: str, port: int, handler: GatewayHandler | None = None):
        quiet_aiosmtpd_log()
        kwargs = smtp_kwargs()
        server_hostname = kwargs.pop("hostname")
        super().__init__(
            handler or GatewayHandler(), hostname=host, port=port, server_hostname=server_hostname, **kwargs
        )

    def factory(self):
        return GatewaySMTP(self.handler, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False):
        super().stop(no_assert=no_assert)
        self.handler.close()


def quiet_aiosmtpd_log() -> None:
    # aiosmtpd logs addresses and commands at INFO: keep its logger for warnings (ids-only logs).
    logging.getLogger("mail.log").setLevel(logging.WARNING)


async def serve(host: str, port: int, ready=None, reuse_port: bool = False) -> None:
    """Run the gateway until SIGTERM or SIGINT (manage.py runsmtpd)."""
    quiet_aiosmtpd_log()
    handler = GatewayHandler()
    kwargs = smtp_kwargs()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: GatewaySMTP(handler, loop=loop, **kwargs), host=host, port=port, reuse_port=reuse_port or None
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "smtp gateway listening on %s:%s (tls=%s, require_tls=%s)",
        host,
        port,
        bool(kwargs["tls_context"]),
        kwargs["require_starttls"],
    )
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await loop.run_in_executor(None, handler.close)
        log.info("smtp gateway stopped")


def serve_processes(host: str, port: int, processes: int, ready=None) -> int:
    """Run `processes` gateways sharing the port (SO_REUSEPORT): the delivery path is Python and
    holds the GIL, so one process uses one core. Returns the exit status."""
    connections.close_all()  # never share a database connection across fork
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child process
            code = 0
            try:
                asyncio.run(serve(host, port, ready=ready, reuse_port=True))
            except BaseException:
                log.exception("smtp gateway process failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum, frame):
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        failed |= os.waitstatus_to_exitcode(status) != 0
    return int(failed)
