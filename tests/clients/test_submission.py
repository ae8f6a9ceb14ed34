"""SMTP submission (issue 11 §2) through smtplib and swaks, with TLS on loopback."""

import email
import email.policy
import logging
import re
import smtplib
import ssl
import subprocess

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.models import Delivery, Entry, Folder
from patients.models import PendingReturn
from tests.clients.conftest import build
from tests.factories import PASSWORD

pytestmark = pytest.mark.integration


def connect(server, tls_files):
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    return smtp


def secure(smtp, tls_files):
    smtp.starttls(context=ssl.create_default_context(cafile=tls_files[0]))
    smtp.ehlo("poste.cabinet")


def test_starttls_before_auth_then_a_send_like_the_webmails(make_submission, cast, with_tls):
    server = make_submission()
    smtp = connect(server, with_tls)
    assert not smtp.has_extn("auth")
    code, text = smtp.docmd("AUTH", "PLAIN AGFsaWNlAHg=")
    assert code == 530 or code == 538
    code, text = smtp.docmd("MAIL", "FROM:<alice.martin@ch-troispics.mssante.fr>")
    assert code == 530
    secure(smtp, with_tls)
    assert "PLAIN" in smtp.esmtp_features["auth"] and "LOGIN" in smtp.esmtp_features["auth"]
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail("alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], b"x")
    assert refused.value.smtp_code == 530
    smtp.login("alice", PASSWORD)
    raw = build(
        "alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], subject="Par Thunderbird"
    )
    assert (
        smtp.sendmail("alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], raw) == {}
    )
    received = Entry.objects.get(mailbox=cast.charlie_box, message__subject="Par Thunderbird")
    assert received.folder.role == Folder.Role.INBOX
    sent = Entry.objects.get(mailbox=cast.alice_box, message=received.message)
    assert sent.folder.role == Folder.Role.SENT
    assert Delivery.objects.get(message=received.message).status == Delivery.Status.DELIVERED
    submitted = AuditEvent.objects.get(action=AuditEvent.Action.SUBMITTED, message_id=received.message_id)
    assert submitted.actor == cast.alice and submitted.detail["source"] == "submission"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor=cast.alice, detail__protocol="smtp").exists()

    # Another's box as sender: 550 with the reason. The organisational box Alice belongs to: fine.
    code, text = smtp.docmd("MAIL", "FROM:<charlie.durand@clinique-du-lac.mssante.fr>")
    assert code == 550 and text.startswith(b"5.7.1 Vous ne pouvez pas envoyer depuis cette adresse")
    smtp.rset()
    raw = build(
        "cardiologie@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], subject="Du service"
    )
    assert (
        smtp.sendmail("cardiologie@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], raw) == {}
    )
    # The From: header must be the sending box, as in the webmail.
    raw = build(
        "charlie.durand@clinique-du-lac.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], subject="Usurpation"
    )
    with pytest.raises(smtplib.SMTPDataError) as forged:
        smtp.sendmail("alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], raw)
    assert forged.value.smtp_code == 550
    smtp.quit()


def test_patient_rules_hold_for_mail_clients(make_submission, cast, with_tls):
    server = make_submission()
    smtp = connect(server, with_tls)
    secure(smtp, with_tls)
    smtp.login("alice", PASSWORD)
    paul = cast.paul_box.address
    raw = build("alice.martin@ch-troispics.mssante.fr", [paul], subject="Votre rendez-vous")
    assert smtp.sendmail("alice.martin@ch-troispics.mssante.fr", [paul], raw) == {}
    assert Entry.objects.filter(mailbox=cast.paul_box, message__subject="Votre rendez-vous").exists()
    # An unknown INS: the automatic return reaches Alice's box, as after a webmail send.
    unknown = "279035121518989@patient.mssante.fr"
    raw = build("alice.martin@ch-troispics.mssante.fr", [unknown, paul], subject="Deux patients")
    assert smtp.sendmail("alice.martin@ch-troispics.mssante.fr", [unknown, paul], raw) == {}
    message = Entry.objects.get(mailbox=cast.paul_box, message__subject="Deux patients").message
    assert [r["address"] for r in message.to] == [paul]  # one patient, one copy: not the other INS
    assert PendingReturn.objects.filter(code="patient_not_found", recipient=unknown).exists()
    smtp.quit()


def _seen_by_patient(patient, entry) -> bytes:
    """What the patient can see of `entry` in their space: the inbox, the conversation, the
    message page and the .eml download."""
    client = Client()
    client.force_login(patient.user)
    pages = [
        client.get(reverse("patients:inbox")),
        client.get(reverse("patients:conversation", args=[entry.pk])),
        client.get(reverse("patients:message", args=[entry.pk])),
    ]
    assert [page.status_code for page in pages] == [200, 200, 200]
    eml = client.get(reverse("mailboxes:message_eml", args=[entry.pk]))
    assert eml.status_code == 200
    return b"".join([page.content for page in pages] + [b"".join(eml.streaming_content)])


def test_a_message_to_two_patients_leaves_as_one_copy_per_patient_as_from_the_webmail(make_submission, cast):
    """A desktop client sends one message To: two patients, Cc: a colleague: each patient's copy
    names that patient alone (no other INS in the space, the message page or the .eml), the
    colleague's copy lists everybody as written, and the Sent folder keeps every copy."""
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    smtp.login("alice", PASSWORD)
    paul, pauline = cast.paul_patient, cast.pauline_patient
    charlie = cast.charlie_box.address
    raw = (
        b"From: Dr Alice MARTIN <alice.martin@ch-troispics.mssante.fr>\r\n"
        + f"To: Paul Lambert <{paul.address}>,\r\n {pauline.address.upper()}\r\n".encode()
        + f"Cc: {charlie}\r\n".encode()
        + b"Subject: Resultats\r\nMessage-ID: <deux-patients@ch-troispics.mssante.fr>\r\n\r\nBonjour.\r\n"
    )
    recipients = [paul.address, pauline.address, charlie]
    assert smtp.sendmail("alice.martin@ch-troispics.mssante.fr", recipients, raw) == {}
    smtp.quit()

    for me, other in ((paul, pauline), (pauline, paul)):
        entry = Entry.objects.get(mailbox=me.mailbox, message__subject="Resultats")
        assert [r["address"] for r in entry.message.to] == [me.address] and entry.message.cc == []
        assert entry.message.message_id == "<deux-patients@ch-troispics.mssante.fr>"
        seen = _seen_by_patient(me, entry)
        assert other.ins.encode() not in seen and other.ins.lower().encode() not in seen
        assert charlie.encode() not in seen
        assert b"Bonjour." in seen
    pro_copy = Entry.objects.get(mailbox=cast.charlie_box, message__subject="Resultats").message
    assert {r["address"] for r in pro_copy.to + pro_copy.cc} == {paul.address, pauline.address, charlie}
    assert not Entry.objects.filter(message=pro_copy, mailbox__kind="PAT").exists()
    sent = Entry.objects.filter(mailbox=cast.alice_box, folder__role=Folder.Role.SENT, message__subject="Resultats")
    assert sent.count() == 3 and sent.order_by("id").first().message == pro_copy
    assert {d.address for d in Delivery.objects.filter(message__subject="Resultats")} == set(recipients)


def test_swaks_with_an_app_password_and_plaintext_refused(make_submission, cast, with_tls):
    from accounts.app_passwords import create_app_password

    _row, secret = create_app_password(cast.alice, "swaks")
    server = make_submission()
    base = ["swaks", "--server", f"127.0.0.1:{server.port}", "--from", "alice.martin@ch-troispics.mssante.fr"]
    base += ["--to", "charlie.durand@clinique-du-lac.mssante.fr", "--h-From", "alice.martin@ch-troispics.mssante.fr"]
    base += ["--auth", "LOGIN", "--auth-user", "alice", "--auth-password", secret, "--h-Subject", "Par swaks"]
    plain = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0
    assert "Host did not advertise authentication" in plain.stdout + plain.stderr or "530" in plain.stdout
    tls = subprocess.run(base + ["--tls"], capture_output=True, text=True, timeout=60)
    assert tls.returncode == 0, tls.stdout + tls.stderr
    assert "250 2.0.0 OK message" in tls.stdout
    assert Entry.objects.filter(mailbox=cast.charlie_box, message__subject="Par swaks").exists()


def test_size_limit_is_the_one_advertised_and_refused_with_its_reason(make_submission, cast, settings):
    """A client that trusts EHLO's SIZE must not upload what will be refused, and a SIZE= over the
    limit is refused at MAIL in French with an enhanced code, as by the gateway."""
    settings.MAILBOX_MAX_MESSAGE_BYTES = settings.PATIENT_MAX_MESSAGE_BYTES = 100_000
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    assert smtp.esmtp_features["size"] == "100000"
    smtp.login("alice", PASSWORD)
    for declared in (100_001, 10_000_000):  # over the limit, and over aiosmtpd's memory cap
        code, text = smtp.docmd("MAIL", f"FROM:<alice.martin@ch-troispics.mssante.fr> SIZE={declared}")
        assert (code, text[:5]) == (552, b"5.3.4"), text
        assert b"trop volumineux" in text
    code, _text = smtp.docmd("MAIL", "FROM:<alice.martin@ch-troispics.mssante.fr> SIZE=100000")
    assert code == 250
    smtp.quit()


def test_bcc_is_not_shown_to_recipients_and_date_and_message_id_are_added(make_submission, cast):
    """A client that writes its blind copies in a Bcc: field (mutt, scripts) and leaves Date and
    Message-ID to the server: the recipients do not see who had the blind copy, and every copy,
    the Sent one included, carries the Date and the Message-ID the store keeps."""
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    smtp.login("alice", PASSWORD)
    raw = (
        b"From: Dr Alice MARTIN <alice.martin@ch-troispics.mssante.fr>\r\n"
        b"To: charlie.durand@clinique-du-lac.mssante.fr\r\n"
        b"Bcc:\r\n cardiologie@ch-troispics.mssante.fr\r\n"
        b"Subject: Copie cachee\r\n"
        b"\r\n"
        b"Bcc: this line of the body stays.\r\n"
    )
    recipients = ["charlie.durand@clinique-du-lac.mssante.fr", "cardiologie@ch-troispics.mssante.fr"]
    assert smtp.sendmail("alice.martin@ch-troispics.mssante.fr", recipients, raw) == {}
    smtp.quit()
    received = Entry.objects.get(mailbox=cast.charlie_box, message__subject="Copie cachee")
    assert Entry.objects.filter(mailbox=cast.cardio, message=received.message).exists()
    with received.message.raw.open("rb") as fh:
        stored = fh.read()
    head, _, body = stored.partition(b"\r\n\r\n")
    assert b"cardiologie" not in head and b"Bcc" not in head
    assert body == b"Bcc: this line of the body stays.\r\n"
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["Message-ID"] == received.message.message_id
    assert parsed["Message-ID"].endswith("@ch-troispics.mssante.fr>")
    assert parsed["Date"].datetime is not None


def test_a_message_just_over_the_limit_is_refused_with_sizes_that_differ(make_submission, cast, settings):
    """26,250,067 bytes against 26,214,400 were both "25,0 Mo" in the refusal: the reason then
    gives both in bytes."""
    settings.MAILBOX_MAX_MESSAGE_BYTES = settings.PATIENT_MAX_MESSAGE_BYTES = 100_000
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    smtp.login("alice", PASSWORD)
    raw = build("alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], body="")
    lines, rest = divmod(100_010 - len(raw), 78)
    raw += (b"a" * 76 + b"\r\n") * lines + b"b" * (rest - 2) + b"\r\n"
    assert len(raw) == 100_010
    assert smtp.mail("alice.martin@ch-troispics.mssante.fr")[0] == 250  # no SIZE= declared
    assert smtp.rcpt("charlie.durand@clinique-du-lac.mssante.fr")[0] == 250
    code, reply = smtp.data(raw)
    assert code == 552 and reply.startswith(b"5.3.4 Le message pese "), reply
    sizes = re.findall(rb"(?:pese|de) ([\d,]+ \w+)", reply)
    assert len(sizes) == 2 and sizes[0] != sizes[1], reply
    smtp.quit()


def test_ehlo_advertises_enhanced_status_codes_and_aiosmtpds_replies_carry_them(make_submission, cast):
    """RFC 2034: ENHANCEDSTATUSCODES in EHLO, and every reply after it with an RFC 3463 code of its
    class, aiosmtpd's bare ones included; not the greeting, not the answer to EHLO, not a 3xx."""
    server = make_submission()
    smtp = smtplib.SMTP()
    code, greeting = smtp.connect("127.0.0.1", server.port)
    assert code == 220 and not re.match(rb"2\.\d+\.\d+ ", greeting)
    code, _ = smtp.ehlo("poste.cabinet")
    assert code == 250 and smtp.has_extn("enhancedstatuscodes"), smtp.ehlo_resp
    alice, charlie = "alice.martin@ch-troispics.mssante.fr", "charlie.durand@clinique-du-lac.mssante.fr"
    before_auth = [
        ("NOOP", "", 250, b"2.0.0 OK"),
        ("RSET", "", 250, b"2.0.0 OK"),
        ("FOO", "", 500, b'5.5.2 Error: command "FOO" not recognized'),
        ("MAIL", f"FROM:<{alice}>", 530, b"5.7.0 Authentication required"),
        ("AUTH", "", 501, b"5.5.4 Not enough value"),
        ("AUTH", "PLAIN a b", 501, b"5.5.4 Too many values"),
    ]
    assert [(c, a, *smtp.docmd(c, a)) for c, a, _, _ in before_auth] == before_auth
    smtp.login("alice", PASSWORD)
    after_auth = [
        ("AUTH", "PLAIN", 503, b"5.5.1 Already authenticated"),
        ("RCPT", f"TO:<{charlie}>", 503, b"5.5.1 Error: need MAIL command"),
        ("DATA", "", 503, b"5.5.1 Error: need RCPT command"),
        ("MAIL", f"FROM:<{alice}> FOO=1", 555, b"5.5.4 MAIL FROM parameters not recognized or not implemented"),
        ("MAIL", f"FROM:<{alice}>", 250, b"2.1.0 OK"),
        ("MAIL", f"FROM:<{alice}>", 503, b"5.5.1 Error: nested MAIL command"),
        ("RCPT", f"TO:<{charlie}>", 250, b"2.1.5 OK"),
        ("DATA", "now", 501, b"5.5.4 Syntax: DATA"),
        ("QUIT", "now", 501, b"5.5.4 Syntax: QUIT"),
    ]
    assert [(c, a, *smtp.docmd(c, a)) for c, a, _, _ in after_auth] == after_auth
    assert smtp.docmd("RSET") == (250, b"2.0.0 OK")
    assert smtp.quit() == (221, b"2.0.0 Bye")


def test_an_unexpected_error_is_a_temporary_failure_without_its_text(make_submission, cast, monkeypatch):
    """The database down while a client signs in: the client is told to try again later (451
    4.3.0), never a permanent 500 quoting the error (aiosmtpd's own answer), and the same
    connection signs in once the database is back."""
    import base64

    from django.db import OperationalError

    from clients import auth

    real = auth.check_password_login

    def database_down(*args, **kwargs):
        raise OperationalError("connection to server at 10.0.0.5 port 5432 failed")

    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    monkeypatch.setattr(auth, "check_password_login", database_down)
    code, reply = smtp.docmd("AUTH", f"PLAIN {plain}")
    assert (code, reply[:5]) == (451, b"4.3.0")
    assert b"10.0.0.5" not in reply and b"OperationalError" not in reply
    monkeypatch.setattr(auth, "check_password_login", real)
    assert smtp.docmd("AUTH", f"PLAIN {plain}")[0] == 235
    smtp.quit()


def test_a_report_without_envelope_id_finds_the_copy_that_left_for_the_other_operator(make_submission, cast):
    """A message split per patient is several stored messages with the client's Message-ID; a
    non-delivery report that only quotes that Message-ID (no ENVID echoed) bounces the delivery of
    the copy that left for the other operator, not a patient's copy."""
    from mailboxes.delivery import send_message
    from mailboxes.models import TrustedDomain

    peer = "autre-operateur.mssante.fr"
    TrustedDomain.objects.create(name=peer)
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    smtp.login("alice", PASSWORD)
    recipients = [cast.paul_patient.address, cast.pauline_patient.address, f"dr.x@{peer}"]
    raw = build("alice.martin@ch-troispics.mssante.fr", recipients, subject="Avis", message_id="<avis@ch-troispics>")
    assert smtp.sendmail("alice.martin@ch-troispics.mssante.fr", recipients, raw) == {}
    smtp.quit()
    report = (
        f"From: <MAILER-DAEMON@{peer}>\r\nTo: <{cast.alice_box.address}>\r\nSubject: Undelivered\r\n"
        f"Message-ID: <dsn-1@{peer}>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {peer}\r\n\r\n"
        f"Final-Recipient: rfc822; dr.x@{peer}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <avis@ch-troispics>\r\n--b--\r\n"
    ).encode()
    send_message(report, envelope_from="", envelope_to=[cast.alice_box.address], source="smtp")
    assert Delivery.objects.get(address=f"dr.x@{peer}").status == Delivery.Status.BOUNCED


def test_a_login_leaves_no_warning_of_aiosmtpd_in_the_log(make_submission, cast, with_tls, caplog):
    # aiosmtpd sets its deprecated Session.login_data after each AUTH and warns: one WARNING line
    # per mail-client login in production's log, about aiosmtpd's own code.
    server = make_submission()
    smtp = connect(server, with_tls)
    secure(smtp, with_tls)
    with caplog.at_level(logging.INFO):
        smtp.login("alice", PASSWORD)
        smtp.noop()
    smtp.quit()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor=cast.alice, detail__protocol="smtp").exists()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


NO_FROM = "Le message n'a pas d'en-tete From lisible : il doit donner l'adresse de la boite aux lettres qui envoie."
TWO_AUTHORS = "L'en-tete From du message doit donner la seule adresse de la boite aux lettres qui envoie."
NOT_A_MESSAGE = "Le message est illisible : ce n'est pas un message electronique."


@pytest.mark.parametrize(
    "head, code, reason",
    [
        (b"", 550, NO_FROM),
        (b"From: Professeur Tournesol\r\n", 550, NO_FROM),
        (b"From:\r\n", 550, NO_FROM),
        (b"From: Direction:;\r\n", 550, NO_FROM),
        (
            b"From: <alice.martin@ch-troispics.mssante.fr>, <charlie.durand@clinique-du-lac.mssante.fr>\r\n",
            550,
            TWO_AUTHORS,
        ),
        (
            b"From: <alice.martin@ch-troispics.mssante.fr>\r\nFrom: <charlie.durand@clinique-du-lac.mssante.fr>\r\n",
            550,
            TWO_AUTHORS,
        ),
    ],
    ids=["none", "name-only", "empty", "group", "two-addresses", "two-fields"],
)
def test_a_message_whose_from_is_not_the_box_alone_is_refused_with_its_reason(
    make_submission, cast, head, code, reason
):
    """The check compared the box with the first readable From address only when there was
    one: without a readable From (none, a name alone, a group) the message went out with no
    author, and a second address or a second From field put another author beside the box."""
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    smtp.login("alice", PASSWORD)
    raw = head + b"To: <cardiologie@ch-troispics.mssante.fr>\r\nSubject: Auteur\r\n\r\nBonjour.\r\n"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail("alice.martin@ch-troispics.mssante.fr", ["cardiologie@ch-troispics.mssante.fr"], raw)
    assert (refused.value.smtp_code, refused.value.smtp_error.decode()) == (code, f"5.7.1 {reason}")
    assert smtp.noop()[0] == 250  # the session goes on
    smtp.quit()
    assert not Entry.objects.filter(message__subject="Auteur").exists()


@pytest.mark.parametrize("raw", [b"", b"juste une ligne de texte\r\n"], ids=["empty", "no-header"])
def test_a_data_that_is_no_message_is_refused_as_the_gateway_refuses_it(make_submission, cast, raw):
    """The Date and Message-ID the server adds in front made a message of it, sent to the
    recipients with no author nor subject."""
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.ehlo("poste.cabinet")
    smtp.login("alice", PASSWORD)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail("alice.martin@ch-troispics.mssante.fr", ["cardiologie@ch-troispics.mssante.fr"], raw)
    assert (refused.value.smtp_code, refused.value.smtp_error.decode()) == (554, f"5.6.0 {NOT_A_MESSAGE}")
    smtp.quit()
    assert not Entry.objects.filter(mailbox=cast.cardio).exists()
