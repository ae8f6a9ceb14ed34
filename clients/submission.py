"""SMTP submission for desktop clients and practice software (issue 11 §2; RFC 6409, RFC 4954).

`manage.py runsubmission` (aiosmtpd, port SUBMISSION_PORT: 1587 embedded, 587 in production):

- STARTTLS before anything else and AUTH only inside TLS when a certificate is configured
  (CLIENTS_TLS_CERT); without one the listener only binds loopback (the embedded set-up);
- AUTH PLAIN / LOGIN with an app password (or the account password when the account has no
  second factor and none is required), OAUTHBEARER / XOAUTH2 with a Pro Santé Connect token:
  the same checks, throttling and audit events as IMAP (clients/auth.py);
- MAIL FROM must be a box the user may send from in the webmail (`pro_mailboxes`), else
  `550 5.7.1` saying so; RCPT TO is checked at once by the delivery path's `check_recipient`;
- the message goes through `mailboxes.delivery.send_message(source="submission")` exactly like a
  webmail send: trust space, size, quota, the MSS-C patient rules, audit, relay; a message that
  reaches several patients leaves as one copy per patient, each naming that patient alone, as
  the composer's (`mailboxes.fanout.deliver_one_per_patient`, the policy's `own_copies`). The delivery
  path files the Sent copy; a client that also saves its own copy (APPEND to Sent) gets it
  folded onto that one by the IMAP server (same Message-ID), so there is never a duplicate.
- the session lives only while its access holds: before MAIL, RCPT, NOOP, RSET, VRFY and before
  the delivery of a received message, `SubmissionHandler.withdrawn` asks `auth.session_standing`;
  a deactivated account, a revoked app password, a changed password, or a sender box taken away
  gets `421 4.7.0` with the reason, the connection is closed and nothing is sent;
- a recipient refused once the message is known (a box filled meanwhile) gets a non-delivery
  report in the sender's box, as the gateway does: the client already had its 250.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import signal
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from email.utils import format_datetime, make_msgid

from aiosmtpd.smtp import MISSING, SMTP, AuthResult
from django.conf import settings
from django.db import connections
from django.utils import timezone

from clients import auth, psc, sasl
from clients.tls import server_context
from mailboxes.smtp_gateway import (
    TEMPORARY_FAILURE,
    ascii_text,
    declared_size,
    max_message_bytes,
    refusal_reply,
    session_error_reply,
    too_large_reply,
    with_enhanced_code,
)
from mssante.db import kept_connection_call

log = logging.getLogger("clients.submission")


def sender_box(user, address: str):
    """The box `address` names if the user may send from it (as in the webmail), else None."""
    from webmail.selectors import pro_mailboxes

    return pro_mailboxes(user).filter(address=(address or "").strip().lower()).first()


HEADER_END = re.compile(rb"\r?\n\r?\n")
FIELD_START = re.compile(rb"\r?\n(?![ \t])")  # a line break not followed by a folded line
BCC_FIELD = re.compile(rb"bcc[ \t]*:", re.IGNORECASE)
FIELD_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")  # RFC 5322 §2.2: printable ASCII but ":", then ":"


def completed(raw: bytes, domain: str) -> bytes:
    """What the submission server does to a client's message (RFC 6409 §8): its `Bcc:` field
    is removed, as Postfix's cleanup does (the To and Cc recipients must not learn who had a blind
    copy), and a missing `Date:` or `Message-ID:` is added (§8.2, §8.3), so that recipients,
    other operators and replies see the Message-ID the store keeps. Anything else is left as the
    client wrote it; a message that needs nothing comes back unchanged."""
    end = HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    fields = FIELD_START.split(head)
    if not FIELD_NAME.match(fields[0]):
        # Not a message (empty, or a text without header fields): left as it came, the delivery
        # path refuses it as the gateway does (554 5.6.0), where a Date and a Message-ID added
        # in front made it one, sent with no author.
        return raw
    kept = [field for field in fields if not BCC_FIELD.match(field)]
    names = {field.split(b":", 1)[0].strip().lower() for field in kept}
    added = []
    if b"date" not in names:
        added.append(b"Date: " + format_datetime(timezone.localtime()).encode())
    if b"message-id" not in names:
        added.append(b"Message-ID: " + make_msgid(domain=domain).encode())
    if not added and len(kept) == len(fields):
        return raw
    return b"\r\n".join(added + kept) + rest


def submit(raw: bytes, sender: str, recipients: list[str], login: auth.Login):
    """The delivery path, as a webmail send (one copy per patient when the message reaches
    several: `mailboxes.fanout.deliver_one_per_patient`), plus a report for late refusals."""
    from mailboxes import delivery, reports
    from mailboxes.fanout import deliver_one_per_patient

    box = sender_box(login.user, sender)
    if box is None:
        raise delivery.DeliveryRefused("sender_not_allowed", "Vous ne pouvez pas envoyer depuis cette adresse.")
    outcome = deliver_one_per_patient(
        completed(raw, box.domain_name),
        envelope_from=box.address,
        envelope_to=recipients,
        source="submission",
        actor=login.user,
        sender_mailbox=box,
    )
    message = outcome.primary.message
    late = {a: d for a, d in outcome.refused.items() if not d.automatic_return}
    if late and reports.may_answer(message):
        failures = [
            (address, delivery.reply_code(d.code)[1], refusal_reply(d.code, d.reason)) for address, d in late.items()
        ]
        dsn = reports.build_dsn(message, failures, reports.reporting_host())
        try:
            delivery.send_message(dsn, envelope_from="", envelope_to=[box.address], source="system")
        except Exception:
            log.exception("submission late refusal report failed: message=%s", message.pk)
    return outcome


class SubmissionHandler:
    def __init__(self, workers: int | None = None):
        self.workers = workers or settings.SMTPD_WORKERS
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="submission-orm")
        self.psc_enabled = psc.enabled()
        self.sender_boxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> box
        self.checked_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> monotonic time

    async def run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(kept_connection_call, fn, *args))

    def close(self) -> None:
        barrier = threading.Barrier(self.workers)

        def close_here():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)
            connections.close_all()

        for future in [self.executor.submit(close_here) for _ in range(self.workers)]:
            future.result()
        self.executor.shutdown(wait=True)

    # --- AUTH (RFC 4954) ------------------------------------------------------------------------

    async def _login(self, server, credentials: sasl.Credentials) -> AuthResult:
        ip = (server.session.peer or ("",))[0] or None
        try:
            if credentials.bearer:
                login = await self.run(
                    lambda: auth.check_token_login(
                        credentials.secret, login=credentials.login, protocol="smtp", ip=ip, authzid=credentials.authzid
                    )
                )
            else:
                login = await self.run(
                    lambda: auth.check_password_login(
                        credentials.login, credentials.secret, protocol="smtp", ip=ip, authzid=credentials.authzid
                    )
                )
        except auth.LoginRefused as exc:
            await asyncio.sleep(settings.CLIENTS_AUTH_FAILURE_PAUSE)
            code = "454 4.7.0" if exc.throttled else "535 5.7.8"
            return AuthResult(success=False, handled=False, message=f"{code} {ascii_text(exc.text)}")
        return AuthResult(success=True, auth_data=login)

    async def _initial(self, server, args, prompt: bytes = b""):
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return sasl.b64decode(args[1])
            except sasl.SaslError:
                return MISSING
        return await server.challenge_auth(prompt)

    async def auth_PLAIN(self, server, args) -> AuthResult:
        message = await self._initial(server, args)
        if message is MISSING:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Message illisible")
        try:
            credentials = sasl.plain(message)
        except sasl.SaslError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Message illisible")
        return await self._login(server, credentials)

    async def auth_LOGIN(self, server, args) -> AuthResult:
        login = await self._initial(server, args, b"Username:")
        if login is MISSING:
            return AuthResult(success=False, handled=True)
        secret = await server.challenge_auth(b"Password:")
        if secret is MISSING:
            return AuthResult(success=False, handled=True)
        try:
            credentials = sasl.login(login, secret)
        except sasl.SaslError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Message illisible")
        return await self._login(server, credentials)

    async def _bearer(self, server, args, decode) -> AuthResult:
        if not self.psc_enabled:
            return AuthResult(success=False, handled=False, message="504 5.5.4 Mecanisme non disponible")
        message = await self._initial(server, args)
        if message is MISSING:
            return AuthResult(success=False, handled=True)
        try:
            credentials = decode(message)
        except sasl.SaslError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Message illisible")
        result = await self._login(server, credentials)
        if not result.success:
            # RFC 7628 §3.2.2: the error as a challenge; the client answers with ^A, then the failure.
            await server.challenge_auth(sasl.oauth_error())
        return result

    async def auth_OAUTHBEARER(self, server, args) -> AuthResult:
        return await self._bearer(server, args, sasl.oauthbearer)

    async def auth_XOAUTH2(self, server, args) -> AuthResult:
        return await self._bearer(server, args, sasl.xoauth2)

    # --- an open session ------------------------------------------------------------------------

    async def withdrawn(self, session, envelope) -> str | None:
        """The `421 4.7.0` reply that ends a session whose access was withdrawn since AUTH
        (clients/auth.py `session_standing`: the account, its credentials, the sender box of the
        transaction under way), else None. `SubmissionSMTP.push` closes the connection after a
        421 (RFC 5321 §3.8). At most one look every CLIENTS_ACCESS_CHECK_SECONDS."""
        login = session.auth_data
        if not isinstance(login, auth.Login):
            return None  # not logged in yet: aiosmtpd answers 530 itself
        now = time.monotonic()
        if now - self.checked_at.get(session, float("-inf")) < settings.CLIENTS_ACCESS_CHECK_SECONDS:
            return None
        box = self.sender_boxes.get(session) if envelope.mail_from else None
        standing = await self.run(auth.session_standing, login, None if box is None else [box.pk])
        self.checked_at[session] = now
        reason = standing.reason
        if not reason and box is not None and box.pk not in standing.boxes:
            reason = "mailbox_lost"
        if not reason:
            return None
        ip = (session.peer or ("",))[0] or None
        text = await self.run(auth.end_session, login, reason, ip, box.pk if reason == "mailbox_lost" else None)
        return "421 4.7.0 " + ascii_text(text)

    async def handle_NOOP(self, server, session, envelope, arg):
        return await self.withdrawn(session, envelope) or MISSING

    async def handle_RSET(self, server, session, envelope):
        return await self.withdrawn(session, envelope) or MISSING

    async def handle_VRFY(self, server, session, envelope, address):
        return await self.withdrawn(session, envelope) or MISSING

    # --- the transaction ------------------------------------------------------------------------

    async def handle_exception(self, error):
        return session_error_reply(error, log, "submission")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # Advertise the real limit, as the gateway does, not aiosmtpd's memory cap (the limit plus
        # a slack): a client that trusts SIZE must not upload a message that will be refused.
        session.host_name = hostname
        responses = [f"250-SIZE {max_message_bytes()}" if r.startswith("250-SIZE") else r for r in responses]
        # RFC 2034: every reply after EHLO carries an enhanced status code (`SubmissionSMTP.push`).
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        size = declared_size(mail_options)
        if size is not None and size > max_message_bytes():
            return too_large_reply(max_message_bytes())
        login: auth.Login = session.auth_data
        try:
            if ended := await self.withdrawn(session, envelope):
                return ended
            box = await self.run(sender_box, login.user, address)
        except Exception:
            log.exception("submission temporary failure at MAIL")
            return TEMPORARY_FAILURE
        if box is None:
            return "550 5.7.1 " + ascii_text(
                "Vous ne pouvez pas envoyer depuis cette adresse : l'expéditeur doit être une boîte aux lettres "
                "dont vous êtes titulaire ou membre."
            )
        envelope.mail_from = box.address
        envelope.mail_options.extend(mail_options)
        self.sender_boxes[session] = box
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        from mailboxes import delivery

        if ended := await self.withdrawn(session, envelope):
            return ended
        if len(envelope.rcpt_tos) >= settings.SMTPD_MAX_RECIPIENTS:
            return "452 4.5.3 Trop de destinataires pour ce message"
        try:
            decision = await self.run(
                lambda: delivery.check_recipient(
                    envelope.mail_from, address, sender_mailbox=self.sender_boxes.get(session)
                )
            )
        except Exception:
            log.exception("submission temporary failure at RCPT")
            return TEMPORARY_FAILURE
        # A refusal the patient-domain policy answers with an automatic return (closed space,
        # unknown patient...) is accepted here and answered by the delivery path, as for a
        # webmail send; any other refusal is said at once.
        if not decision.deliver and not decision.automatic_return:
            return refusal_reply(decision.code, decision.reason)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        from mailboxes import delivery

        raw = envelope.original_content
        envelope.original_content = envelope.content = None
        if ended := await self.withdrawn(session, envelope):
            return ended
        try:
            result = await self.run(submit, raw, envelope.mail_from, list(envelope.rcpt_tos), session.auth_data)
        except delivery.DeliveryRefused as exc:
            log.info("submission refused: %s", exc.code)
            return refusal_reply(exc.code, exc.reason, exc.smtp_code)
        except Exception:
            log.exception("submission temporary failure at DATA")
            return TEMPORARY_FAILURE
        message = result.primary.message
        log.info(
            "submission accepted message=%s copies=%s delivered=%s queued=%s",
            message.pk,
            len(result.results),
            sum(len(r.delivered) for r in result.results),
            sum(len(r.queued) for r in result.results),
        )
        return f"250 2.0.0 OK message {message.pk}"


def smtp_kwargs() -> dict:
    context = server_context()
    return {
        "data_size_limit": max_message_bytes() + 64 * 1024,
        "hostname": settings.SMTPD_HOSTNAME or None,
        "ident": "MSSante submission",
        "tls_context": context,
        "require_starttls": context is not None,
        "auth_required": True,
        "auth_require_tls": context is not None,
        "timeout": settings.SMTPD_TIMEOUT,
        "decode_data": False,
        "enable_SMTPUTF8": False,
    }


class CommandLimits(collections.defaultdict):
    """aiosmtpd's per-command line limits, with room for a bearer token in AUTH (RFC 4954 §4
    allows 12,288 octets); aiosmtpd empties the table at each connection, so the AUTH limit is
    given on demand rather than stored."""

    def __missing__(self, key):
        return AUTH_LINE_LIMIT if key == "AUTH" else SMTP.command_size_limit


AUTH_LINE_LIMIT = 12288


class SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP; the AUTH mechanisms are the handler's (`auth_*`). Lines may be as long as
    an AUTH with a PSC token (a JWT is well over aiosmtpd's 1,001 bytes)."""

    line_length_limit = AUTH_LINE_LIMIT
    command_size_limits = CommandLimits()

    async def push(self, status):
        # aiosmtpd's own size refusals (a declared SIZE or DATA over its memory cap) in the
        # gateway's words; every other bare reply of aiosmtpd with its enhanced status code
        # (RFC 2034, advertised in EHLO), as the gateway does.
        if isinstance(status, str):
            if status.startswith("552 Error:"):
                status = too_large_reply(max_message_bytes())
            status = with_enhanced_code(status, self.hostname)
        await super().push(status)
        if isinstance(status, str) and status.startswith("421 ") and self.transport is not None:
            self.transport.close()  # 421: the server closes the channel (RFC 5321 §3.8)


def without_login_data_warning(record: logging.LogRecord) -> bool:
    """aiosmtpd itself sets its deprecated `Session.login_data` after every successful AUTH, and
    warns about it: a WARNING line per mail-client login that says nothing about this server."""
    return not record.getMessage().startswith("Session.login_data is deprecated")


async def start(host: str, port: int, handler: SubmissionHandler | None = None):
    from clients.imap.server import check_bind

    check_bind(host)
    aiosmtpd_log = logging.getLogger("mail.log")
    aiosmtpd_log.setLevel(logging.WARNING)
    aiosmtpd_log.addFilter(without_login_data_warning)
    handler = handler or SubmissionHandler()
    kwargs = smtp_kwargs()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SubmissionSMTP(handler, loop=loop, **kwargs), host=host, port=port)
    return server, handler


async def serve(host: str, port: int, ready=None) -> None:
    server, handler = await start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("submission listening on %s:%s (tls=%s)", host, port, server_context() is not None)
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await loop.run_in_executor(None, handler.close)
