"""An open IMAP or submission session ends when its access is withdrawn (clients/auth.py
`session_standing`): the account's last box membership removed by an administrator, the account
deactivated, its password changed, or the selected folder's box taken away. Driven from outside
with Python's imaplib and smtplib against the real listeners; the next command the client sends
gets `* BYE` (IMAP) or `421 4.7.0` (submission) with the reason, the server closes the
connection, and a `session.ended` event (ids and a reason code) records it."""

import imaplib
import logging
import os
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from audit.models import AuditEvent
from mailboxes.activation import deactivate_mailboxes
from mailboxes.models import Entry, Membership
from tests.clients.conftest import build, deliver
from tests.factories import PASSWORD, organisational_mailbox

pytestmark = pytest.mark.integration

CARDIO = "cardiologie@ch-troispics.mssante.fr"
CARDIO_INBOX = "Partag&AOk-s/cardiologie@ch-troispics.mssante.fr/INBOX"
CHARLIE = "charlie.durand@clinique-du-lac.mssante.fr"


def remove_membership_in_admin(client, admin_user, box, user) -> None:
    """What an administrator does: delete the membership from the admin."""
    membership = Membership.objects.get(mailbox=box, user=user)
    client.force_login(admin_user)
    response = client.post(f"/admin/mailboxes/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def assert_closed(sock: socket.socket) -> None:
    """The server closed the connection: the next read is the end of the stream."""
    sock.settimeout(10)
    assert sock.recv(64) == b""


def ended_event(user, reason):
    return AuditEvent.objects.get(action=AuditEvent.Action.SESSION_ENDED, actor_id=user.pk, outcome=reason)


def test_removing_the_last_membership_ends_the_imap_session_with_bye(imap, cast, client, caplog):
    deliver(cast, cast.cardio, subject="Avis cardiologique")
    session = imap.client("bob", PASSWORD)
    assert session.select("INBOX") == ("OK", [b"1"])  # the service's box is Bob's only one
    assert session.fetch("1", "(UID FLAGS)")[0] == "OK"

    remove_membership_in_admin(client, cast.ada, cast.cardio, cast.bob)
    with caplog.at_level(logging.INFO, logger="clients.auth"):
        with pytest.raises(imaplib.IMAP4.abort) as ended:
            session.fetch("1", "(BODY.PEEK[])")
    assert "Aucune boite aux lettres n'est rattachee a ce compte" in str(ended.value)
    assert_closed(session.sock)

    event = ended_event(cast.bob, "no_mailbox")
    assert event.actor_label == "imap" and event.ip == "127.0.0.1"
    assert event.detail == {"protocol": "imap", "method": "password", "reason": "no_mailbox"}
    line = next(r.getMessage() for r in caplog.records if "session ended" in r.getMessage())
    assert f"user={cast.bob.pk}" in line and "reason=no_mailbox" in line
    assert "bob" not in line.replace(f"user={cast.bob.pk}", "") and CARDIO not in line
    # Nothing was read after the removal.
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.READ, actor=cast.bob).exists()


def test_a_box_taken_away_while_selected_ends_that_session_only(imap, cast, client):
    """Alice has the service's box selected in one connection and her own inbox in another
    (as Thunderbird does); the service box is deactivated: the first gets BYE at its next
    command, the second goes on and no longer lists the service's folders."""
    deliver(cast, cast.cardio, subject="Avis cardiologique")
    deliver(cast, cast.alice_box, subject="Compte rendu")
    on_cardio = imap.client("alice", PASSWORD)
    assert on_cardio.select(CARDIO_INBOX)[0] == "OK"
    on_inbox = imap.client("alice", PASSWORD)
    assert on_inbox.select("INBOX")[0] == "OK"

    deactivate_mailboxes([cast.cardio], actor=cast.ada)  # the admin action "Désactiver les BAL"
    with pytest.raises(imaplib.IMAP4.abort) as ended:
        on_cardio.fetch("1", "(BODY.PEEK[])")
    assert "Cette boite aux lettres ne vous est plus accessible" in str(ended.value)
    assert_closed(on_cardio.sock)
    event = ended_event(cast.alice, "mailbox_lost")
    assert event.mailbox_id == cast.cardio.pk

    typ, data = on_inbox.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"Compte rendu" in data[0][1]
    names = [row.decode() for row in on_inbox.list()[1]]
    assert any(name.endswith(" INBOX") for name in names)
    assert not any("cardiologie" in name for name in names)
    assert on_inbox.select(CARDIO_INBOX)[0] == "NO"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SESSION_ENDED, actor_id=cast.alice.pk).count() == 1


def test_deactivating_the_account_ends_its_idle_session(imap, cast, settings):
    """An idling client (no command to wait for) is told within the poll interval."""
    settings.IMAP_POLL_SECONDS = settings.IMAP_SAFETY_POLL_SECONDS = 0.2
    with socket.create_connection(("127.0.0.1", imap.port), timeout=10) as raw:
        stream = raw.makefile("rb")
        assert stream.readline().startswith(b"* OK")
        raw.sendall(f"a LOGIN alice {PASSWORD}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
        line = b""
        while not line.startswith(b"+ "):
            line = stream.readline()
        cast.alice.is_active = False
        cast.alice.save(update_fields=["is_active"])
        rest = stream.read()  # until the server closes
    assert rest.startswith(b"* BYE Ce compte a ete desactive\r\n")
    assert ended_event(cast.alice, "inactive").detail["protocol"] == "imap"


def test_a_password_change_ends_password_sessions_not_app_password_ones(imap, cast, client):
    from accounts.app_passwords import create_app_password

    _row, secret = create_app_password(cast.alice, "Thunderbird")
    by_password = imap.client("alice", PASSWORD)
    by_app_password = imap.client("alice", secret)
    for session in (by_password, by_app_password):
        assert session.select("INBOX")[0] == "OK"

    cast.alice.set_password("Un-autre-mot-de-passe-2026")
    cast.alice.save()
    with pytest.raises(imaplib.IMAP4.abort) as ended:
        by_password.noop()
    assert "Le mot de passe du compte a change" in str(ended.value)
    assert by_app_password.noop()[0] == "OK"
    assert ended_event(cast.alice, "password_changed").detail["method"] == "password"


def test_submission_session_ends_with_421_when_the_last_membership_goes(make_submission, cast, client):
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.login("bob", PASSWORD)
    raw = build(CARDIO, [CHARLIE], subject="Avant")
    assert smtp.sendmail(CARDIO, [CHARLIE], raw) == {}

    remove_membership_in_admin(client, cast.ada, cast.cardio, cast.bob)
    code, text = smtp.mail(CARDIO)
    assert code == 421
    assert text.startswith(b"4.7.0 Aucune boite aux lettres n'est rattachee a ce compte")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()
    event = ended_event(cast.bob, "no_mailbox")
    assert event.detail == {"protocol": "smtp", "method": "password", "reason": "no_mailbox"}


def test_a_sender_box_taken_away_mid_transaction_sends_nothing(make_submission, cast):
    """MAIL and RCPT accepted, then the box is deactivated while the client uploads: the end
    of DATA gets 421, nothing is delivered, nothing is filed in Sent."""
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.login("alice", PASSWORD)
    assert smtp.mail(CARDIO)[0] == 250
    assert smtp.rcpt(CHARLIE)[0] == 250
    deactivate_mailboxes([cast.cardio], actor=cast.ada)
    code, text = smtp.data(build(CARDIO, [CHARLIE], subject="Pendant"))
    assert code == 421 and text.startswith(b"4.7.0 Cette boite aux lettres ne vous est plus accessible")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()
    assert not Entry.objects.filter(message__subject="Pendant").exists()
    assert ended_event(cast.alice, "mailbox_lost").mailbox_id == cast.cardio.pk


def test_a_deactivated_account_or_changed_password_stops_submission_at_the_next_command(make_submission, cast):
    server = make_submission()
    first = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    first.login("alice", PASSWORD)
    second = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    second.login("charlie", PASSWORD)
    assert first.noop()[0] == 250 and second.noop()[0] == 250

    cast.alice.set_password("Un-autre-mot-de-passe-2026")
    cast.alice.save()
    cast.charlie.is_active = False
    cast.charlie.save(update_fields=["is_active"])
    assert first.noop() == (421, b"4.7.0 Le mot de passe du compte a change : reconnectez-vous avec le nouveau")
    assert second.rset() == (421, b"4.7.0 Ce compte a ete desactive")
    for smtp in (first, second):
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
    assert ended_event(cast.alice, "password_changed").actor_label == "smtp"
    assert ended_event(cast.charlie, "inactive").actor_label == "smtp"


def test_with_a_bound_the_withdrawal_is_seen_at_the_first_command_past_it(imap, cast, settings):
    """CLIENTS_ACCESS_CHECK_SECONDS bounds how often a busy session looks: within the bound a
    command is served without a look; the first command past it ends the session."""
    settings.CLIENTS_ACCESS_CHECK_SECONDS = 3600
    session = imap.client("alice", PASSWORD)
    assert session.select("INBOX")[0] == "OK"
    cast.alice.is_active = False
    cast.alice.save(update_fields=["is_active"])
    assert session.noop()[0] == "OK"  # within the bound: served, not looked at
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SESSION_ENDED, actor_id=cast.alice.pk).exists()
    settings.CLIENTS_ACCESS_CHECK_SECONDS = 0  # the bound is now past
    with pytest.raises(imaplib.IMAP4.abort) as ended:
        session.noop()
    assert "Ce compte a ete desactive" in str(ended.value)
    assert ended_event(cast.alice, "inactive").detail["protocol"] == "imap"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("une seconde", "CLIENTS_ACCESS_CHECK_SECONDS='une seconde' is not a number"),
        ("-1", "CLIENTS_ACCESS_CHECK_SECONDS='-1' must be a number of seconds, 0 or more"),
    ],
)
def test_a_bad_bound_stops_the_settings_with_its_name(value, error):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"DJANGO_SETTINGS_MODULE": "mssante.settings", "DEBUG": "true", "CLIENTS_ACCESS_CHECK_SECONDS": value})
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {error}" in result.stderr


def test_a_check_that_fails_ends_the_imap_session_without_its_error(imap, cast, monkeypatch):
    """The database unreachable when the session looks at its access: access unknown is access
    refused, with a temporary BYE that quotes nothing of the error; a new login works once the
    database is back."""
    from django.db import OperationalError

    from clients import auth

    def database_down(*args, **kwargs):
        raise OperationalError("connection to server at 10.0.0.5 port 5432 failed")

    session = imap.client("alice", PASSWORD)
    assert session.select("INBOX")[0] == "OK"
    monkeypatch.setattr(auth, "session_standing", database_down)
    with pytest.raises(imaplib.IMAP4.abort) as ended:
        session.noop()
    assert str(ended.value).endswith("=> [UNAVAILABLE] Erreur temporaire du serveur : reconnectez-vous")
    assert "10.0.0.5" not in str(ended.value)
    assert_closed(session.sock)
    monkeypatch.undo()
    assert imap.client("alice", PASSWORD).select("INBOX")[0] == "OK"


def test_a_session_whose_boxes_are_all_gone_ends_even_if_the_account_got_another(imap, cast, client):
    """Bob is moved from cardiology to another service: his open session (nothing selected)
    showed only the cardiology box, so it ends, and his next login shows the new one."""
    from tests.factories import organisational_mailbox

    session = imap.client("bob", PASSWORD)
    assert session.list()[0] == "OK"
    organisational_mailbox("pneumologie", cast.d_troispics, responsible=cast.alice_pro, members=[cast.bob])
    remove_membership_in_admin(client, cast.ada, cast.cardio, cast.bob)
    with pytest.raises(imaplib.IMAP4.abort) as ended:
        session.list()
    assert "Cette boite aux lettres ne vous est plus accessible" in str(ended.value)
    assert_closed(session.sock)
    assert ended_event(cast.bob, "mailbox_lost").mailbox_id is None
    again = imap.client("bob", PASSWORD)
    assert again.select("INBOX")[0] == "OK"
    assert again.getquotaroot("INBOX")[1][0][0] == b"INBOX pneumologie@ch-troispics.mssante.fr"


def test_a_box_given_while_connected_appears_at_the_next_list(imap, cast, client):
    """Bob's mail client stays connected while an administrator makes him a member of another
    service's box: its next LIST shows the new box's folders (the ones it showed keep their
    names) and it can read there, without signing in again."""
    urgences = organisational_mailbox("urgences", cast.d_troispics, responsible=cast.alice_pro)
    deliver(cast, urgences, subject="Admission")
    session = imap.client("bob", PASSWORD)
    assert session.select("INBOX")[0] == "OK"
    before = [row.decode() for row in session.list()[1]]
    assert not any("urgences" in name for name in before)

    client.force_login(cast.ada)
    response = client.post(
        "/admin/mailboxes/membership/add/", {"mailbox": urgences.pk, "user": cast.bob.pk, "role": "member"}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]

    after = [row.decode() for row in session.list()[1]]
    assert set(before) < set(after)  # the folders it showed are still there, under their names
    inbox = "Partag&AOk-s/urgences@ch-troispics.mssante.fr/INBOX"
    assert any(name.endswith(f" {inbox}") for name in after), after
    assert session.select(f'"{inbox}"') == ("OK", [b"1"])
    typ, data = session.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"Admission" in data[0][1]
