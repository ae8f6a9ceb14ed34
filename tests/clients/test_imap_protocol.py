"""The IMAP server answered exactly, through Python's imaplib (issue 11 §1)."""

import re
import time

import pytest

from audit.models import AuditEvent
from mailboxes.models import Entry, Folder, Message
from tests.clients.conftest import build, deliver
from tests.factories import PASSWORD

pytestmark = pytest.mark.integration

CARDIO = "Partag&AOk-s/cardiologie@ch-troispics.mssante.fr"


def test_capabilities_and_special_use_folders(imap, cast):
    client = imap.client()
    assert {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "NAMESPACE", "ID", "AUTH=PLAIN"} <= set(
        client.capabilities
    )
    client.login("alice", PASSWORD)
    _typ, rows = client.list()
    lines = [r.decode() for r in rows]
    assert '(\\HasNoChildren) "/" INBOX' in lines
    assert '(\\HasNoChildren \\Sent) "/" Envoy&AOk-s' in lines
    assert '(\\HasNoChildren \\Drafts) "/" Brouillons' in lines
    assert '(\\HasNoChildren \\Trash) "/" Corbeille' in lines
    assert '(\\HasNoChildren \\Archive) "/" Archives' in lines
    assert f'(\\HasNoChildren) "/" {CARDIO}/INBOX' in lines
    assert client.namespace()[1] == [b'(("" "/")) NIL (("Partag&AOk-s/" "/"))']
    _typ, rows = client.list('""', "%")
    assert b'(\\Noselect \\HasChildren) "/" Partag&AOk-s' in rows
    assert client.logout()[0] == "BYE"


def test_select_fetch_envelope_bodystructure_and_sections(imap, cast):
    message = deliver(
        cast,
        cast.alice_box,
        subject="Résultats d'analyse",
        attachments=[("cr.pdf", "application/pdf", b"%PDF-1.4 test")],
    )
    client = imap.client("alice", PASSWORD)
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    assert client.untagged_responses["UIDVALIDITY"] == [str(cast.alice_box.folder("inbox").pk).encode()]
    assert client.untagged_responses["UIDNEXT"] == [b"2"]
    _typ, data = client.fetch("1", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    head = data[0][0] if isinstance(data[0], tuple) else data[0]
    text = b"".join(d if isinstance(d, bytes) else d[0] + d[1] for d in data).decode()
    assert "UID 1 " in text and "FLAGS ()" in text
    assert f"RFC822.SIZE {message.size}" in text
    assert (
        '(("" NIL "charlie.durand" "clinique-du-lac.mssante.fr"))' in text
        or '((NIL NIL "charlie.durand" "clinique-du-lac.mssante.fr"))' in text
    )
    assert '"=?utf-8?q?R=C3=A9sultats_d=27analyse?="' in text or "R=C3=A9sultats" in text
    assert '("application" "pdf" NIL NIL NIL "base64"' in text
    assert '"mixed"' in text
    assert head.startswith(b"1 (")
    # The bytes served are the stored bytes.
    _typ, data = client.fetch("1", "(BODY.PEEK[])")
    from mailboxes.store import read_raw

    assert data[0][1] == read_raw(message)
    _typ, data = client.fetch(
        "1", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.10>)"
    )
    parts = sections(data)
    assert parts["BODY[1]"].startswith(b"Bonjour,")
    assert b"Content-Type: application/pdf" in parts["BODY[2.MIME]"]
    assert parts["BODY[HEADER.FIELDS (SUBJECT)]"].startswith(b"Subject: =?utf-8?q?R=C3=A9sultats")
    assert parts["BODY[HEADER.FIELDS (SUBJECT)]"].endswith(b"\r\n\r\n")
    assert parts["BODY[]<0>"] == read_raw(message)[:10]
    # PEEK left the message unread; a BODY[] fetch reads it (flag and audit).
    assert Entry.objects.get(mailbox=cast.alice_box, message=message).seen is False
    _typ, data = client.fetch("1", "(BODY[TEXT])")
    assert b"FLAGS (\\Seen)" in b"".join(d[0] if isinstance(d, tuple) else d for d in data)
    assert Entry.objects.get(mailbox=cast.alice_box, message=message).seen is True
    client.noop()  # the connection writes its read events before waiting
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.READ, actor=cast.alice, message_id=message.pk, detail__via="imap"
    ).exists()


def test_search_store_copy_move_expunge(imap, cast):
    first = deliver(cast, cast.alice_box, subject="Bilan cardiaque")
    deliver(cast, cast.alice_box, subject="Ordonnance")
    client = imap.client("alice", PASSWORD)
    client.select("INBOX")
    assert client.search(None, "ALL") == ("OK", [b"1 2"])
    assert client.search("UTF-8", "SUBJECT", "bilan") == ("OK", [b"1"])
    assert client.search(None, "FROM", "charlie") == ("OK", [b"1 2"])
    assert client.uid("SEARCH", "UID", "2:*") == ("OK", [b"2"])
    assert client.search(None, "NOT", "SUBJECT", "bilan") == ("OK", [b"2"])
    assert client.search(None, "SINCE", "1-Jan-2020", "SMALLER", "100000") == ("OK", [b"1 2"])
    assert client.search(None, "HEADER", "Message-ID", first.message_id.strip("<>")) == ("OK", [b"1"])
    client.store("1", "+FLAGS", "(\\Flagged \\Seen)")
    assert client.search(None, "FLAGGED") == ("OK", [b"1"])
    assert client.search(None, "UNSEEN") == ("OK", [b"2"])
    entry = Entry.objects.get(mailbox=cast.alice_box, message=first)
    assert entry.flagged and entry.seen
    # COPY makes a second copy in Archives (UIDPLUS).
    typ, data = client.copy("1", "Archives")
    archives = cast.alice_box.folder("archive")
    assert typ == "OK" and data[0].startswith(f"[COPYUID {archives.pk} 1 1]".encode())
    assert Entry.objects.filter(folder=archives).count() == 1
    # MOVE: the entry goes to the trash folder, the client sees it expunged.
    typ, data = client.uid("MOVE", "2", "Corbeille")
    assert typ == "OK"
    assert any(b"[COPYUID" in line for line in client.untagged_responses.get("OK", []))
    assert client.untagged_responses.get("EXPUNGE") == [b"2"]
    trash = cast.alice_box.folder("trash")
    moved = Entry.objects.get(folder=trash)
    assert moved.imap_uid == 1 and moved.trashed_at is not None
    # \Deleted then EXPUNGE deletes for good (with an audit event).
    client.store("1", "+FLAGS", "(\\Deleted)")
    _typ, data = client.expunge()
    assert data[-1] == b"1"  # imaplib keeps the MOVE's "2" before it
    assert not Entry.objects.filter(pk=entry.pk).exists()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.DELETED, object_id=str(entry.pk), detail__final=True
    ).exists()
    assert client.select("INBOX") == ("OK", [b"0"])


def test_append_gives_appenduid_and_folds_the_clients_sent_copy(imap, cast):
    client = imap.client("alice", PASSWORD)
    raw = build(
        cast.alice_box.address,
        [cast.charlie_box.address],
        subject="Brouillon",
        message_id="<draft-1@ch-troispics.mssante.fr>",
    )
    typ, data = client.append("Brouillons", "(\\Draft \\Seen)", None, raw)
    drafts = cast.alice_box.folder("drafts")
    assert typ == "OK" and data == [f"[APPENDUID {drafts.pk} 1] Message depose".encode()]
    entry = Entry.objects.get(folder=drafts)
    assert entry.is_draft and entry.seen and entry.message.subject == "Brouillon"
    # A message sent by the box (the delivery path filed it in Sent): the client's own Sent
    # copy, same Message-ID, is folded onto it.
    from mailboxes.delivery import send_message

    sent_raw = build(
        cast.alice_box.address,
        [cast.charlie_box.address],
        subject="Envoi",
        message_id="<sent-1@ch-troispics.mssante.fr>",
    )
    send_message(
        sent_raw,
        envelope_from=cast.alice_box.address,
        envelope_to=[cast.charlie_box.address],
        source="webmail",
        actor=cast.alice,
        sender_mailbox=cast.alice_box,
    )
    sent = cast.alice_box.folder("sent")
    client_copy = sent_raw.replace(b"Subject: Envoi", b"Bcc: x@ch-troispics.mssante.fr\r\nSubject: Envoi")
    typ, data = client.append("Envoy&AOk-s", "(\\Seen)", None, client_copy)
    assert typ == "OK"
    assert Entry.objects.filter(folder=sent).count() == 1
    assert data[0].startswith(f"[APPENDUID {sent.pk} ".encode())


def test_uids_stable_across_restarts_and_new_after_a_webmail_move(imap, cast):
    deliver(cast, cast.alice_box, subject="un")
    second = deliver(cast, cast.alice_box, subject="deux")
    client = imap.client("alice", PASSWORD)
    client.select("INBOX")
    before = client.uid("FETCH", "1:*", "(UID)")[1]
    validity = client.untagged_responses["UIDVALIDITY"]
    client.logout()
    imap.stop()
    imap.start()
    client = imap.client("alice", PASSWORD)
    client.select("INBOX")
    assert client.untagged_responses["UIDVALIDITY"] == validity
    assert client.uid("FETCH", "1:*", "(UID)")[1] == before == [b"1 (UID 1)", b"2 (UID 2)"]
    # The webmail moves the second message out and back: it comes back with a new, higher UID.
    from webmail.organise import move_entry

    entry = Entry.objects.get(mailbox=cast.alice_box, message=second)
    move_entry(entry, cast.alice_box.folder("archive"), cast.alice)
    move_entry(entry, cast.alice_box.folder("inbox"), cast.alice)
    client.noop()
    _typ, data = client.uid("FETCH", "1:*", "(UID)")
    assert [d.decode() for d in data] == ["1 (UID 1)", "2 (UID 3)"]
    assert Folder.objects.get(pk=cast.alice_box.folder("inbox").pk).imap_uid_next == 4


def test_idle_wakes_when_the_webmail_delivers(imap, cast):
    client = imap.client("alice", PASSWORD)
    client.select("INBOX")
    tag = "Z1"  # a raw command of our own, beside imaplib's tags (its public send/readline)
    client.send(f"{tag} IDLE\r\n".encode())
    assert client.readline().startswith(b"+ ")
    started = time.monotonic()
    deliver(cast, cast.alice_box, subject="Nouveau")
    client.sock.settimeout(5)
    line = client.readline()
    waited = time.monotonic() - started
    assert line == b"* 1 EXISTS\r\n"
    assert waited < 2.0
    client.send(b"DONE\r\n")
    assert client.readline().startswith(tag.encode() + b" OK")


def test_shared_box_for_members_only_and_patients_refused(imap, cast):
    deliver(cast, cast.cardio, subject="Pour le service")
    bob = imap.client("bob", PASSWORD)
    _typ, rows = bob.list()
    # Bob has no nominative box: the organisational box is his personal namespace.
    assert b'(\\HasNoChildren) "/" INBOX' in rows
    assert bob.select("INBOX") == ("OK", [b"1"])
    alice = imap.client("alice", PASSWORD)
    assert alice.select(f"{CARDIO}/INBOX") == ("OK", [b"1"])
    charlie = imap.client("charlie", PASSWORD)
    _typ, rows = charlie.list()
    assert not any(b"cardiologie" in r for r in rows)
    typ, data = charlie.select(f"{CARDIO}/INBOX")
    assert typ == "NO" and data[0].startswith(b"[NONEXISTENT]")
    paul = imap.client()
    with pytest.raises(imaplib_error()) as refused:
        paul.login(cast.paul.username, PASSWORD)
    assert "AUTHENTICATIONFAILED" in str(refused.value)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, actor=cast.paul, outcome="patient").exists()


def sections(data) -> dict[str, bytes]:
    """imaplib's FETCH answer → {"BODY[...]": bytes}."""
    out = {}
    for item in data:
        if isinstance(item, tuple):
            match = re.search(rb"(BODY\[[^\]]*\](?:<\d+>)?) \{\d+\}$", item[0])
            out[match.group(1).decode()] = item[1]
    return out


def imaplib_error():
    import imaplib

    return imaplib.IMAP4.error


def test_plaintext_login_refused_when_tls_is_configured(make_imap, cast, with_tls):
    import imaplib
    import ssl

    server = make_imap(tls_port=True)
    client = imaplib.IMAP4("127.0.0.1", server.port)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    assert "AUTH=PLAIN" not in client.capabilities
    with pytest.raises(imaplib.IMAP4.error) as refused:
        client.login("alice", PASSWORD)
    assert "PRIVACYREQUIRED" in str(refused.value)
    context = ssl.create_default_context(cafile=with_tls[0])
    client = imaplib.IMAP4("127.0.0.1", server.port)
    client.starttls(context)
    assert client.login("alice", PASSWORD)[0] == "OK"
    implicit = imaplib.IMAP4_SSL("127.0.0.1", server.tls_port, ssl_context=context)
    assert implicit.login("alice", PASSWORD)[0] == "OK"
    assert implicit.select("INBOX")[0] == "OK"


def test_literal_and_bad_syntax(imap, cast):
    client = imap.client("alice", PASSWORD)
    tag = b"Z1"  # raw commands of our own, beside imaplib's tags (its public send/readline)
    client.send(tag + b" SELECT {5}\r\n")
    assert client.readline().startswith(b"+ ")
    client.send(b"INBOX\r\n")
    lines = []
    while True:
        line = client.readline()
        lines.append(line)
        if line.startswith(tag):
            break
    assert lines[-1].startswith(tag + b" OK [READ-WRITE]")
    tag = b"Z2"
    client.send(tag + b" FETCH 1:* (NOPE)\r\n")
    assert re.match(rb"^\S+ BAD ", client.readline())


def test_search_ignores_accents_and_case_both_ways(imap, cast):
    """Issue 16 item 6: SEARCH folds accents and case on both sides, keeps substring matching,
    and does not wait for the webmail's search indexer (the messages are still pending)."""
    deliver(cast, cast.alice_box, subject="Échographie cardiaque")
    deliver(cast, cast.alice_box, subject="Compte rendu", body="L'ÉCHOGRAPHIE CARDIAQUE est normale.\n")
    deliver(cast, cast.alice_box, subject="echographie de contrôle")
    deliver(cast, cast.alice_box, subject="Ordonnance")
    assert Message.objects.filter(search_pending=True).count() == 4
    client = imap.client("alice", PASSWORD)
    client.select("INBOX")
    assert client.search(None, "TEXT", "echographie") == ("OK", [b"1 2 3"])
    assert client.search(None, "SUBJECT", "ECHOGRAPHIE") == ("OK", [b"1 3"])
    assert client.search(None, "BODY", "echographie") == ("OK", [b"2"])
    assert client.search(None, "BODY", "cardiaq") == ("OK", [b"2"])  # a substring, as RFC 3501 says
    assert client.search(None, "NOT", "TEXT", "echographie") == ("OK", [b"4"])
    # A UTF-8 literal with accents finds the text stored without them, and the other way round.
    client.literal = "échographie".encode()
    assert client.search("UTF-8", "SUBJECT") == ("OK", [b"1 3"])
    client.literal = b"CONTROLE"
    assert client.search("UTF-8", "SUBJECT") == ("OK", [b"3"])
    client.literal = "ÉCHOGRAPHIE".encode()
    assert client.search("UTF-8", "OR", "SUBJECT", "ordonnance", "TEXT") == ("OK", [b"1 2 3 4"])
    client.literal = "Échographie".encode()
    assert client.uid("SEARCH", "CHARSET", "UTF-8", "HEADER", "Subject") == ("OK", [b"1 3"])
    assert client.search(None, "FROM", "CHARLIE.DURAND") == ("OK", [b"1 2 3 4"])
    assert client.search(None, "TO", "ALICE") == ("OK", [b"1 2 3 4"])
    client.logout()


def test_a_database_restart_costs_no_failed_command(make_imap, cast):
    """PostgreSQL restarted between two commands (here `pg_terminate_backend` of the server's
    sessions, what a restart does to each): the server's kept connection is seen closed and
    replaced before the next command, which answers OK (mssante.db.kept_connection_call)."""
    from django.db import connection

    from tests.sessions import terminate_other_sessions

    server = make_imap(workers=1)  # one connection, kept from one command to the next
    client = server.client("alice", PASSWORD)
    assert client.select("INBOX")[0] == "OK"
    assert terminate_other_sessions() >= (connection.vendor == "postgresql")  # the server's session
    assert client.status("INBOX", "(MESSAGES UNSEEN)")[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_moving_into_a_folder_that_already_gave_the_same_uid(imap, cast, client):
    """A desktop client filed copies in Corbeille and Archives (UID 1 there) while the inbox's
    messages already had UIDs 1 and 2 (mbsync's "move to trash" is APPEND + EXPUNGE). Moving
    them there, by IMAP MOVE or by the webmail's buttons, gives them new UIDs in their new
    folder; on SQLite it was refused by the (folder, UID) constraint: a server error for the
    client, a 500 page in the webmail."""
    first = deliver(cast, cast.alice_box, subject="un")
    second = deliver(cast, cast.alice_box, subject="deux")
    imap_client = imap.client("alice", PASSWORD)
    imap_client.select("INBOX")
    for folder in ("Corbeille", "Archives", "Archives"):
        raw = build(cast.alice_box.address, [cast.charlie_box.address], subject=f"Copie dans {folder}")
        assert imap_client.append(folder, "(\\Seen)", None, raw)[0] == "OK"
    trash, archives = cast.alice_box.folder("trash"), cast.alice_box.folder("archive")

    typ, data = imap_client.uid("MOVE", "1", "Corbeille")
    assert typ == "OK", data
    moved = Entry.objects.get(mailbox=cast.alice_box, message=first)
    assert moved.folder_id == trash.pk and moved.imap_uid != 1
    imap_client.select("Corbeille")
    assert imap_client.uid("SEARCH", None, "ALL") == ("OK", [b"1 2"])

    client.force_login(cast.alice)
    entry = Entry.objects.get(mailbox=cast.alice_box, message=second)
    assert entry.imap_uid == 2
    response = client.post(f"/pro/message/{entry.pk}/action/", {"action": "archive"})
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.folder_id == archives.pk and entry.imap_uid is None
    imap_client.select("Archives")
    assert imap_client.uid("SEARCH", None, "ALL") == ("OK", [b"1 2 3"])
