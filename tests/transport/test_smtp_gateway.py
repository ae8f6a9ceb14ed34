"""The inbound SMTP gateway through the real path: smtplib → aiosmtpd gateway → delivery → box.

Issue 3 item 5: trust space at MAIL/RCPT with a 5xx that says why, 552 for oversize (SIZE= and
actual size), 250 only once committed, 451 on a temporary problem, STARTTLS per RULES.md §5.
"""

import signal
import smtplib
import socket
import ssl
import subprocess
import sys
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.db import OperationalError

from audit.models import AuditEvent
from mailboxes.models import Delivery, Entry, Folder, Mailbox, Message, TrustedDomain
from tests.transport.conftest import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


def make_raw(to: str, *, subject="Compte rendu", body="Bonjour,\nvoici le compte rendu.\n", attachment=None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Dr Externe <{PEER_SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=PEER)
    message.set_content(body)
    if attachment:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="compte-rendu.pdf")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.fixture
def trusted_peer(cast):
    TrustedDomain.objects.create(name=PEER)
    return cast


def client_for(controller) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", controller.port, timeout=10)
    client.ehlo("mx.autre-operateur.mssante.fr")
    return client


def test_message_from_trusted_operator_is_committed_then_250(trusted_peer, start_gateway):
    cast = trusted_peer
    gateway = start_gateway()
    raw = make_raw(cast.alice_box.address, attachment=b"%PDF-1.4\n" + b"x" * 5000)
    with client_for(gateway) as client:
        code, _ = client.mail(PEER_SENDER)
        assert code == 250
        assert client.rcpt(cast.alice_box.address)[0] == 250
        assert client.rcpt(cast.cardio.address)[0] == 250
        code, reply = client.data(raw)
    assert code == 250, reply
    message = Message.objects.get()
    assert reply.decode().endswith(f"message {message.pk}")
    # Kept exactly as received behind our trace lines, stored once, entered in both inboxes.
    with message.raw.open("rb") as fh:
        stored = fh.read()
    assert stored.endswith(raw) and stored.startswith(f"Return-Path: <{PEER_SENDER}>\r\nReceived: ".encode())
    assert message.envelope_from == PEER_SENDER
    inbox_boxes = set(
        Entry.objects.filter(message=message, folder__role=Folder.Role.INBOX).values_list("mailbox_id", flat=True)
    )
    assert inbox_boxes == {cast.alice_box.pk, cast.cardio.pk}
    assert message.attachments.get().size == 5009
    assert set(Delivery.objects.filter(message=message).values_list("status", flat=True)) == {"delivered"}
    submitted = AuditEvent.objects.get(action="message.submitted", message_id=message.pk)
    assert submitted.actor_label == "smtp"


def test_data_keeps_dot_stuffed_lines_and_refuses_over_long_lines_on_the_same_connection(trusted_peer, start_gateway):
    """aiosmtpd's own DATA phase: dot-unstuffing, its line limit (1001 octets with the CRLF, one
    more than RFC 5321 §4.5.3.1.6 asks) answered at the end of DATA, and the connection's next
    message unaffected."""
    cast = trusted_peer
    gateway = start_gateway()
    head = make_raw(cast.alice_box.address, body="debut\n")
    longest = b"a" * 999
    with client_for(gateway) as client:
        accepted = head + b".ligne pointee\r\n..\r\n" + longest + b"\r\nfin\r\n"
        assert client.sendmail(PEER_SENDER, [cast.alice_box.address], accepted) == {}
        for size in (1000, 70_000):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail(PEER_SENDER, [cast.alice_box.address], head + b"a" * size + b"\r\n")
            assert refused.value.smtp_code == 500
        again = make_raw(cast.cardio.address)
        assert client.sendmail(PEER_SENDER, [cast.cardio.address], again) == {}
    stored = Message.objects.order_by("id")
    assert stored.count() == 2
    with stored[0].raw.open("rb") as fh:
        # smtplib stuffed the dots; the gateway took them out again: the bytes as written.
        assert fh.read().endswith(accepted)


def test_null_sender_report_is_accepted(trusted_peer, start_gateway):
    gateway = start_gateway()
    box = trusted_peer.alice_box.address
    report = (
        f"From: <mailer-daemon@{PEER}>\r\nTo: <{box}>\r\nSubject: Non remis\r\n"
        f"Message-ID: {make_msgid(domain=PEER)}\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nNon remis.\r\n--b--\r\n"
    ).encode()
    with client_for(gateway) as client:
        assert client.mail("<>")[0] == 250
        assert client.rcpt(box)[0] == 250
        assert client.data(report)[0] == 250
    assert Message.objects.get().envelope_from == ""


def test_unknown_recipient_and_untrusted_domains_are_refused_with_reason(trusted_peer, start_gateway):
    cast = trusted_peer
    gateway = start_gateway()
    with client_for(gateway) as client:
        code, reply = client.mail("pirate@exemple.com")
        assert (code, reply[:5]) == (550, b"5.7.1")
        assert b"exemple.com" in reply and b"espace de confiance" in reply
        client.rset()
        # Our own domains never arrive from outside: a forged local sender is refused.
        code, reply = client.mail(f"alice.martin@{cast.d_troispics.name}")
        assert (code, reply[:5]) == (550, b"5.7.1")
        assert f'"{cast.d_troispics.name}"'.encode() in reply
        client.rset()
        assert client.mail(PEER_SENDER)[0] == 250
        code, reply = client.rcpt(f"personne@{cast.d_troispics.name}")
        assert (code, reply[:5]) == (550, b"5.1.1")
        assert b"Aucune boite aux lettres" in reply
        code, reply = client.rcpt("quelquun@exemple.com")
        assert (code, reply[:5]) == (550, b"5.7.1")
        # A trusted domain hosted elsewhere: this gateway is not an open relay.
        code, reply = client.rcpt(f"confrere@{PEER}")
        assert (code, reply[:5]) == (550, b"5.7.1")
        assert client.rcpt(cast.alice_box.address)[0] == 250
        code, _ = client.data(make_raw(cast.alice_box.address))
        assert code == 250
    message = Message.objects.get()
    assert message.envelope_to == [cast.alice_box.address]


def test_wrong_patient_ins_is_answered_by_the_policy_return(trusted_peer, start_gateway, settings, sink):
    """Issue 15 item 6: no bare 550 at RCPT; the policy's automatic return, relayed back with
    the null sender, is the answer (the same as a hosted sender gets)."""
    cast = trusted_peer
    gateway = start_gateway()
    ins = cast.paul_box.local_part
    wrong_key = f"{ins[:13]}{(int(ins[13:]) + 1) % 97:02d}"
    address = f"{wrong_key}@{settings.PATIENT_DOMAIN}"
    with client_for(gateway) as client:
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(address)[0] == 250
        code, reply = client.data(make_raw(address))
        assert code == 250 and b"retour automatique" in reply
    assert not Message.objects.filter(entries__mailbox__kind="PAT").exists()
    [returned] = sink.handler.received
    assert returned.mail_from == "<>" and returned.rcpt_tos == [PEER_SENDER]
    assert b"INS" in returned.raw


def test_oversize_is_refused_with_552(trusted_peer, settings, start_gateway):
    settings.MAILBOX_MAX_MESSAGE_BYTES = settings.PATIENT_MAX_MESSAGE_BYTES = 100_000
    settings.SMTP_OVERSIZE_RETURN_MAX_BYTES = 1_000_000
    cast = trusted_peer
    gateway = start_gateway()
    base = make_raw(cast.alice_box.address, body="")
    padding = 100_000 - len(base)
    lines, rest = divmod(padding, 78)
    exact = base + (b"a" * 76 + b"\r\n") * lines + b"b" * (rest - 2) + b"\r\n"
    assert len(exact) == 100_000
    over = exact[:-2] + b"c\r\n"
    with client_for(gateway) as client:
        # EHLO SIZE is what the gateway reads: up to the oversize-return cap (a patient's
        # automatic return answers more than the limit); a professional is refused at RCPT.
        assert client.has_extn("size") and client.esmtp_features["size"] == "1000000"
        code, reply = client.mail(PEER_SENDER, ["SIZE=1000001"])
        assert (code, reply[:5]) == (552, b"5.3.4")
        assert client.mail(PEER_SENDER, ["SIZE=100001"])[0] == 250
        code, reply = client.rcpt(cast.alice_box.address)
        assert (code, reply[:5]) == (552, b"5.3.4")
        assert client.rset()[0] == 250
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(cast.alice_box.address)[0] == 250
        code, reply = client.data(over)
        assert (code, reply[:5]) == (552, b"5.3.4")
        assert client.mail(PEER_SENDER, ["SIZE=100000"])[0] == 250
        assert client.rcpt(cast.alice_box.address)[0] == 250
        assert client.data(exact)[0] == 250
    # The limit is on what the peer sent; the stored size adds our trace lines.
    stored = Message.objects.get()
    with stored.raw.open("rb") as fh:
        assert fh.read().endswith(exact)
    assert 100_000 < stored.size < 100_600


def test_far_oversize_is_refused_without_being_kept(trusted_peer, settings, start_gateway):
    settings.MAILBOX_MAX_MESSAGE_BYTES = settings.PATIENT_MAX_MESSAGE_BYTES = 20_000
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(trusted_peer.alice_box.address)[0] == 250
        code, reply = client.data(make_raw(trusted_peer.alice_box.address, body="z" * 200_000))
    assert (code, reply[:5]) == (552, b"5.3.4")
    assert not Message.objects.exists()


def test_recipient_refused_after_data_gets_a_report_relayed_to_the_sender(trusted_peer, start_gateway, sink):
    cast = trusted_peer
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=1000, used_bytes=900)
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(cast.alice_box.address)[0] == 250  # the size is not known yet
        assert client.rcpt(cast.cardio.address)[0] == 250
        code, _ = client.data(make_raw(cast.alice_box.address))
    assert code == 250
    original = Message.objects.get(is_report=False)
    assert Entry.objects.filter(message=original).get().mailbox_id == cast.cardio.pk
    assert Delivery.objects.get(message=original, address=cast.alice_box.address).reason == "over_quota"
    # The 250 made us responsible: a non-delivery report goes back to the sender, relayed.
    [got] = sink.handler.received
    assert got.rcpt_tos == [PEER_SENDER] and got.mail_from == "<>"
    report = message_from_bytes(got.raw)
    assert (report.get_content_type(), report.get_param("report-type")) == ("multipart/report", "delivery-status")
    assert b"Status: 5.2.2" in got.raw
    assert original.message_id.encode() in got.raw


def test_temporary_problem_answers_451_and_the_retry_succeeds(trusted_peer, start_gateway, monkeypatch):
    from mailboxes import delivery

    cast = trusted_peer
    real_send, real_check = delivery.send_message, delivery.check_recipient

    def database_down(*args, **kwargs):
        raise OperationalError("connection refused")

    gateway = start_gateway()
    raw = make_raw(cast.alice_box.address)
    with client_for(gateway) as client:
        monkeypatch.setattr(delivery, "check_recipient", database_down)
        assert client.mail(PEER_SENDER)[0] == 250
        code, reply = client.rcpt(cast.alice_box.address)
        assert (code, reply[:5]) == (451, b"4.3.0")
        monkeypatch.setattr(delivery, "check_recipient", real_check)
        assert client.rcpt(cast.alice_box.address)[0] == 250
        monkeypatch.setattr(delivery, "send_message", database_down)
        code, reply = client.data(raw)
        assert (code, reply[:5]) == (451, b"4.3.0")
        assert not Message.objects.exists()
        # The peer keeps the message and tries again later: nothing is lost.
        monkeypatch.setattr(delivery, "send_message", real_send)
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(cast.alice_box.address)[0] == 250
        assert client.data(raw)[0] == 250
    assert Message.objects.count() == 1


def tls_client_context(ciphers=None, maximum=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers:
        context.set_ciphers(ciphers)
    if maximum:
        context.maximum_version = maximum
    return context


def test_starttls_required_before_mail_with_the_mssante_suites(trusted_peer, tls_files, settings, start_gateway):
    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = tls_files.cert, tls_files.key
    settings.SMTPD_REQUIRE_TLS = True
    settings.SMTPD_TLS_MAX_VERSION = "1.2"
    cast = trusted_peer
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.has_extn("starttls")
        code, _ = client.mail(PEER_SENDER)
        assert code == 530
        client.starttls(context=tls_client_context())
        assert client.sock.version() == "TLSv1.2"
        assert client.sock.cipher()[0] in {
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-SHA384",
            "ECDHE-RSA-AES128-SHA256",
        }
        client.ehlo("mx.autre-operateur.mssante.fr")
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(cast.alice_box.address)[0] == 250
        assert client.data(make_raw(cast.alice_box.address))[0] == 250
    # A suite outside the profile cannot negotiate.
    with client_for(gateway) as client, pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected)):
        client.starttls(context=tls_client_context("ECDHE-RSA-CHACHA20-POLY1305", ssl.TLSVersion.TLSv1_2))
    assert Message.objects.count() == 1


def test_runsmtpd_command_serves_and_stops_on_sigterm(trusted_peer, process_env):
    cast = trusted_peer
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        startup = b""
        while b"ready" not in startup:
            line = proc.stdout.readline()
            assert line, startup
            startup += line
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            refused = client.sendmail(PEER_SENDER, [cast.alice_box.address], make_raw(cast.alice_box.address))
            assert refused == {}
        assert Entry.objects.filter(mailbox=cast.alice_box, folder__role=Folder.Role.INBOX).count() == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        output = startup + proc.stdout.read()
        # Logs carry ids, never an address.
        assert cast.alice_box.address.encode() not in output and PEER_SENDER.encode() not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_database_restart_costs_no_temporary_failure(trusted_peer, start_gateway, settings):
    """PostgreSQL restarted between two messages (here `pg_terminate_backend` of the gateway's
    sessions, what a restart does to each): the gateway's kept connection is seen closed and
    replaced before the next message, which gets its 250, not a 451 (mssante.db)."""
    from django.db import connection

    from tests.sessions import terminate_other_sessions

    cast = trusted_peer
    settings.SMTPD_WORKERS = 1  # one connection, kept from the first message to the second
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.sendmail(PEER_SENDER, [cast.alice_box.address], make_raw(cast.alice_box.address)) == {}
    assert terminate_other_sessions() >= (connection.vendor == "postgresql")  # the gateway's session
    with client_for(gateway) as client:
        client.mail(PEER_SENDER)
        client.rcpt(cast.alice_box.address)
        code, reply = client.data(make_raw(cast.alice_box.address, subject="Après le redémarrage"))
    assert code == 250, reply
    assert Message.objects.filter(subject="Après le redémarrage").count() == 1


def test_pipelining_is_advertised_and_a_pipelined_group_is_answered_in_order(trusted_peer, start_gateway):
    """RFC 2920: a peer that sees PIPELINING sends MAIL, its RCPTs and DATA in one write, then the
    message, the next transaction's commands and QUIT in another; each gets its own reply, in
    order, and an unknown recipient among them is refused alone."""
    cast = trusted_peer
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.has_extn("pipelining")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        replies = sock.makefile("rb")

        def reply() -> str:
            lines = [replies.readline().decode()]
            while lines[-1][3:4] == "-":
                lines.append(replies.readline().decode())
            return lines[-1][:9]

        assert reply().startswith("220")
        sock.sendall(b"EHLO mx.autre-operateur.mssante.fr\r\n")
        assert reply().startswith("250 ")
        group = f"MAIL FROM:<{PEER_SENDER}>\r\nRCPT TO:<{cast.alice_box.address}>\r\n"
        group += f"RCPT TO:<inconnu@{cast.alice_box.domain_name}>\r\nDATA\r\n"
        sock.sendall(group.encode())
        assert [reply() for _ in range(4)] == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "354 End d"]
        message = make_raw(cast.alice_box.address).replace(b"\r\n.", b"\r\n..")
        sock.sendall(message + b"\r\n.\r\nRSET\r\nQUIT\r\n")
        assert reply() == "250 2.0.0"
        assert [reply()[:3] for _ in range(2)] == ["250", "221"]
    assert Entry.objects.filter(mailbox=cast.alice_box).count() == 1
