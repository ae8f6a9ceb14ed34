"""Issue 15 items 1, 2, 4 and 7 (gateway side) through a real SMTP socket to the gateway.

- the null reverse-path `<>` carries only reports (multipart/report) whose From: is trusted;
- a From: outside the trust space behind a trusted envelope is refused with a 5xx that says why;
- the stored message is what was received plus our trace (`Return-Path:`, `Received:`);
- protocol details: `530 5.7.0`, the EHLO reply in one write, one log line per failed handshake.
"""

import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from mailboxes.models import Message, TrustedDomain
from tests.transport.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


@pytest.fixture
def trusted_peer(cast, settings):
    settings.TRUST_ALL_MSSANTE = False
    TrustedDomain.objects.create(name=PEER)
    return cast


def plain(to: str, *, sender: str = f"Dr Externe <{PEER_SENDER}>", subject="Compte rendu") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=PEER)
    message.set_content("Bonjour,\nvoici le compte rendu.\n")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def report(to: str, *, sender: str = f"mailer-daemon@{PEER}") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain=PEER)}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.autre\r\n\r\n"
        "Final-Recipient: rfc822; x@autre-operateur.mssante.fr\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--b--\r\n"
    ).encode()


def client_for(controller) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", controller.port, timeout=10)
    client.ehlo("mx.autre-operateur.mssante.fr")
    return client


def send(gateway, mail_from: str, to: str, raw: bytes):
    with client_for(gateway) as client:
        assert client.mail(mail_from)[0] == 250
        assert client.rcpt(to)[0] == 250
        return client.data(raw)


def test_null_sender_is_refused_for_an_ordinary_message(trusted_peer, start_gateway):
    gateway = start_gateway()
    box = trusted_peer.alice_box.address
    code, reply = send(gateway, "<>", box, plain(box, sender="phisher@evil.example"))
    assert (code, reply[:5]) == (550, b"5.7.1")
    assert b"(<>)" in reply and b"multipart/report" in reply
    # Even with a trusted From: an ordinary message never travels with the null sender.
    code, reply = send(gateway, "<>", box, plain(box))
    assert (code, reply[:5]) == (550, b"5.7.1")
    assert not Message.objects.exists()


def test_null_sender_report_needs_a_trusted_from(trusted_peer, start_gateway):
    gateway = start_gateway()
    box = trusted_peer.alice_box.address
    code, reply = send(gateway, "<>", box, report(box, sender="mailer-daemon@evil.example"))
    assert (code, reply[:5]) == (550, b"5.7.1")
    assert b"evil.example" in reply
    assert not Message.objects.exists()
    code, _ = send(gateway, "<>", box, report(box))
    assert code == 250
    stored = Message.objects.get()
    assert stored.is_report and stored.envelope_from == ""


def test_from_outside_the_trust_space_behind_a_trusted_envelope_is_refused(trusted_peer, start_gateway):
    gateway = start_gateway()
    box = trusted_peer.alice_box.address
    code, reply = send(gateway, PEER_SENDER, box, plain(box, sender='"Dr Chef" <chef@exemple.org>'))
    assert (code, reply[:5]) == (550, b"5.7.1")
    assert b"exemple.org" in reply and b"From" in reply and b"espace de confiance" in reply
    assert not Message.objects.exists()


def tls_client_context(ciphers=None, maximum=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers:
        context.set_ciphers(ciphers)
    if maximum:
        context.maximum_version = maximum
    return context


def test_stored_message_is_the_received_bytes_plus_our_trace(trusted_peer, tls_files, settings, start_gateway):
    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = tls_files.cert, tls_files.key
    settings.SMTPD_REQUIRE_TLS = True
    settings.SMTPD_TLS_MAX_VERSION = "1.2"
    settings.SMTPD_HOSTNAME = "mx.ch-troispics.mssante.fr"
    gateway = start_gateway()
    box = trusted_peer.alice_box.address
    raw = plain(box)
    with client_for(gateway) as client:
        code, reply = client.mail(PEER_SENDER)
        assert (code, reply[:5]) == (530, b"5.7.0")  # STARTTLS first, with its enhanced code
        client.starttls(context=tls_client_context())
        cipher = client.sock.cipher()[0]
        client.ehlo("mx.autre-operateur.mssante.fr")
        assert client.sendmail(PEER_SENDER, [box], raw) == {}
    message = Message.objects.get()
    with message.raw.open("rb") as fh:
        stored = fh.read()
    assert stored.endswith(raw)
    trace = stored[: -len(raw)].decode("ascii")
    assert trace.startswith(
        f"Return-Path: <{PEER_SENDER}>\r\nReceived: from mx.autre-operateur.mssante.fr ([127.0.0.1])"
    )
    assert f"(using TLSv1.2 with cipher {cipher} (" in trace
    assert "by mx.ch-troispics.mssante.fr (MSSante) with ESMTPS id " in trace
    assert f"for <{box}>; " in trace and trace.endswith("\r\n")
    # Folded lines only: the trace is one Return-Path and one Received field.
    assert [line.split(":")[0] for line in trace.split("\r\n") if line and not line.startswith("\t")] == [
        "Return-Path",
        "Received",
    ]
    # The size limits apply to what the peer sent; the box counts what is stored.
    assert message.size == len(stored)


def test_ehlo_reply_is_written_in_one_piece(trusted_peer, start_gateway):
    gateway = start_gateway()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        greeting = sock.recv(4096)
        assert greeting.startswith(b"220 ")
        sock.sendall(b"EHLO mx.autre-operateur.mssante.fr\r\n")
        first = sock.recv(65536)
        lines = first.split(b"\r\n")
        assert len(lines) > 3 and lines[0].startswith(b"250-")
        assert any(line.startswith(b"250 ") for line in lines), first
        sock.sendall(b"QUIT\r\n")


def test_failed_tls_handshake_is_one_log_line(trusted_peer, tls_files, settings, start_gateway, caplog):
    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = tls_files.cert, tls_files.key
    settings.SMTPD_TLS_MAX_VERSION = "1.2"
    gateway = start_gateway()
    caplog.set_level(logging.DEBUG)
    with client_for(gateway) as client, pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected)):
        client.starttls(context=tls_client_context("ECDHE-RSA-CHACHA20-POLY1305", ssl.TLSVersion.TLSv1_2))

    def handshake_logged():
        return [r for r in caplog.records if "handshake" in r.getMessage().lower()]

    [record] = wait_until(handshake_logged)
    assert record.name == "mailboxes.smtp" and record.levelno == logging.WARNING
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert "127.0.0.1" not in record.getMessage()
    # Nothing else from the failed session reaches the log at ERROR.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_raw_utf8_headers_are_decoded_not_replaced(trusted_peer, start_gateway):
    """RFC 6532: a peer may send UTF-8 in header fields (Postfix passes them on with 8BITMIME)."""
    gateway = start_gateway()
    box = trusted_peer.alice_box.address
    raw = (
        f"From: Hélène Dupré <{PEER_SENDER}>\r\nTo: <{box}>\r\nSubject: Résultats d'analyse — février\r\n"
        f"Message-ID: {make_msgid(domain=PEER)}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n'
        "Content-Transfer-Encoding: 8bit\r\n\r\nCi-joint.\r\n--b\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="compte-rendu été.pdf"\r\n\r\n%PDF-1.4\r\n--b--\r\n'
    ).encode()
    code, _ = send(gateway, PEER_SENDER, box, raw)
    assert code == 250
    message = Message.objects.get()
    assert message.subject == "Résultats d'analyse — février"
    assert message.from_name == "Hélène Dupré"
    assert message.attachments.get().filename == "compte-rendu été.pdf"
    assert "\ufffd" not in message.subject + message.from_name
