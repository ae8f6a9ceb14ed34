"""The IMAP server against a hostile or careless client, over a bare socket: commands that
used to overflow the stack, reach the database with what it cannot store, or make the server
hold a message-sized buffer before login, each answered BAD or NO with its reason; the session
and the server go on."""

import socket

import pytest

from mailboxes.models import Folder
from tests.clients.conftest import deliver
from tests.factories import PASSWORD

pytestmark = pytest.mark.integration


class Raw:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, tag: bytes) -> list[bytes]:
        """The lines up to the one that starts with `tag` (a command's tag, or b"+")."""
        lines = []
        while True:
            line = self.file.readline()
            assert line, lines
            lines.append(line.rstrip(b"\r\n"))
            if line.startswith(tag + b" ") or line.rstrip(b"\r\n") == tag:
                return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def close(self):
        self.file.close()
        self.sock.close()


@pytest.fixture
def session(imap, cast):
    raw = Raw(imap.port)
    assert raw.command(b"a0", f"LOGIN alice {PASSWORD}".encode())[-1].startswith(b"a0 OK")
    yield raw
    raw.close()


@pytest.mark.parametrize(
    "keys",
    [b"NOT " * 5000 + b"ALL", b"(" * 3000 + b"ALL" + b")" * 3000, b"OR ALL " * 3000 + b"ALL"],
    ids=["not", "parentheses", "or"],
)
def test_search_keys_nested_thousands_deep_are_bad_and_the_session_goes_on(imap, cast, session, keys):
    """A RecursionError in the parser: the answer was NO [UNAVAILABLE] « Erreur temporaire »
    (a client retries that) with a traceback in the log."""
    deliver(cast, cast.alice_box, subject="Suivi")
    assert session.command(b"s", b"SELECT INBOX")[-1].startswith(b"s OK")
    assert session.command(b"k", b"SEARCH " + keys) == [b"k BAD SEARCH : criteres imbriques sur plus de 50 niveaux"]
    assert session.command(b"n", b"SEARCH NOT NOT (NOT (NOT ALL))") == [b"* SEARCH 1", b"n OK SEARCH termine"]


def test_a_folder_name_the_database_cannot_hold_is_refused_with_its_reason(imap, cast, session):
    """A NUL reached PostgreSQL (CREATE) and a rename to 2000 characters overflowed the column
    (RENAME): both were « Erreur temporaire du serveur ». A control character was kept, and a
    refusal other than a taken name was said ALREADYEXISTS."""
    assert session.command(b"c1", b'CREATE "a\x00b"') == [
        b"c1 NO [CANNOT] Un nom de dossier ne contient pas de caractere de controle."
    ]
    assert session.command(b"c2", b'CREATE "' + b"x" * 2000 + b'"') == [
        b"c2 NO [CANNOT] Un nom de dossier compte au plus 100 caracteres."
    ]
    assert session.command(b"c3", b"CREATE Examens")[-1] == b"c3 OK CREATE termine"
    assert session.command(b"c4", b"CREATE examens")[-1].startswith(b"c4 NO [ALREADYEXISTS]")
    assert session.command(b"r1", b'RENAME Examens "' + b"y" * 2000 + b'"') == [
        b"r1 NO [CANNOT] Un nom de dossier compte au plus 100 caracteres."
    ]
    assert session.command(b"r2", b'RENAME Examens "a\x01b"')[-1].startswith(b"r2 NO [CANNOT]")
    assert session.command(b"r3", b"RENAME Examens a//b") == [
        b"r3 NO [CANNOT] Un nom de dossier n'a pas de niveau vide."
    ]
    assert list(
        Folder.objects.filter(mailbox=cast.alice_box, role=Folder.Role.USER).values_list("name", flat=True)
    ) == ["Examens"]


@pytest.mark.parametrize("name", [b"INBOX", b"inbox"])
def test_a_folder_is_not_renamed_inbox_where_imap_would_hide_it(imap, cast, session, name):
    """RENAME to INBOX was OK: the folder, named like the inbox, vanished from LIST and its
    messages with it."""
    assert session.command(b"c", b"CREATE Examens")[-1] == b"c OK CREATE termine"
    assert session.command(b"r", b"RENAME Examens " + name)[-1].startswith(b"r NO [ALREADYEXISTS]")
    assert b'* LIST (\\HasNoChildren) "/" Examens' in session.command(b"l", b'LIST "" "*"')


def test_a_literal_before_login_is_bounded_and_other_sessions_go_on(imap, cast):
    """Before login the server said « + Pret » to a 5 MB literal (up to the message limit):
    a client that never logs in could make it hold that much per connection."""
    stranger = Raw(imap.port)
    assert stranger.command(b"a1", b"LOGIN alice {5000000}") == [
        b"a1 NO [TOOBIG] Litteral trop long avant authentification"
    ]
    stranger.send(b"a2 LOGIN {5}\r\n")
    assert stranger.until(b"+")[-1].startswith(b"+")
    stranger.send(b"alice {70000}\r\n")  # a chain of literals counts as one command
    assert stranger.until(b"a2") == [b"a2 NO [TOOBIG] Litteral trop long avant authentification"]
    assert stranger.command(b"a3", f"LOGIN alice {{{len(PASSWORD)}+}}\r\n{PASSWORD}".encode())[-1].startswith(b"a3 OK")
    other = imap.client("alice", PASSWORD)
    assert other.select("INBOX")[0] == "OK"
    other.logout()
    stranger.close()


@pytest.mark.parametrize("size", [70_000, 200_000])
def test_a_command_line_over_64_kib_ends_the_session_however_it_arrives(imap, cast, size):
    """The limit held only for a line that came in pieces: one that arrived whole in a read
    (up to 256 KiB) was run (a 70 KB LOGIN was answered AUTHENTICATIONFAILED)."""
    raw = Raw(imap.port)
    raw.send(b"a1 LOGIN alice " + b"x" * size + b"\r\n")
    assert raw.file.readline() == b"* BYE Ligne de commande trop longue\r\n"
    assert raw.file.readline() == b""  # closed
    raw.close()
    other = imap.client("alice", PASSWORD)
    assert other.select("INBOX")[0] == "OK"
    other.logout()


BAD_BEFORE_LOGIN = [
    (b"SELECT INBOX", b"SELECT : connectez-vous d'abord (LOGIN ou AUTHENTICATE)"),
    (b"FROB", b"commande inconnue : FROB"),
    (b"LOGIN alice", b"LOGIN : argument manquant"),
    (b'LOGIN "alice', b"LOGIN : chaine entre guillemets non terminee"),
    (b"CAPABILITY now", b"CAPABILITY : caracteres en trop en fin de commande"),
]
BAD_AFTER_LOGIN = [
    (b"FETCH 1 FLAGS", b"FETCH : ouvrez d'abord un dossier (SELECT ou EXAMINE)"),
    (b"LOGIN alice x", b"LOGIN : session deja authentifiee"),
    (b"STATUS INBOX (MESSAGES FOO)", b"STATUS : element de STATUS inconnu : FOO"),
    (b"CREATE &Jjo", b"CREATE : nom de dossier invalide (UTF-7 modifie) : &Jjo"),
    (b"SELECT INBOX", None),
    (b"FETCH 1 (NOPE)", b"FETCH : element de FETCH inconnu : NOPE"),
    (b"FETCH 0 FLAGS", b"FETCH : 0 n'est pas un numero de message"),
    (b"FETCH 1,,2 FLAGS", b"FETCH : ensemble de messages invalide : 1,,2"),
    (b"FETCH 9 FLAGS", b"FETCH : numero de message au-dela du dernier (1)"),
    (b"FETCH 1 BODY[0]", b"FETCH : les numeros de partie commencent a 1"),
    (b"FETCH 1 BODY[]<0.0>", b"FETCH : une lecture partielle <debut.longueur> demande au moins un octet"),
    (b"UID FROB 1", b"commande UID inconnue : FROB"),
    (b"UID FETCH 1 (\xe9t\xe9)", b"UID FETCH : element de FETCH attendu"),
    (b"SEARCH SINCE 31-Foo-2026", b"SEARCH : date invalide : 31-Foo-2026 (attendue : 1-Dec-2026)"),
    (b"SEARCH FLAGG\xc9", b"SEARCH : critere de recherche inconnu : FLAGG?"),
    (b"STORE 1 FLAGZ (\\Seen)", b"STORE : FLAGS, +FLAGS ou -FLAGS attendu"),
    (
        b'APPEND INBOX "99-Foo-2026 10:00:00 +0100" {1+}\r\nx',
        b'APPEND : date invalide : 99-Foo-2026 10:00:00 +0100 (attendue : "01-Dec-2026 10:00:00 +0100")',
    ),
]


def test_bad_replies_are_short_french_ascii_and_name_the_command(imap, cast):
    """BAD texts were English protocol messages (« expected an atom », « unknown fetch item »)
    while NO texts are French: now French too, 7-bit as the NO texts, after the command's name."""
    deliver(cast, cast.alice_box, subject="Suivi")
    raw = Raw(imap.port)
    for number, (command, reason) in enumerate(BAD_BEFORE_LOGIN):
        tag = b"b%d" % number
        assert raw.command(tag, command) == [tag + b" BAD " + reason]
    assert raw.command(b"a0", f"LOGIN alice {PASSWORD}".encode())[-1].startswith(b"a0 OK")
    for number, (command, reason) in enumerate(BAD_AFTER_LOGIN):
        tag = b"c%d" % number
        lines = raw.command(tag, command)
        if reason is None:
            assert lines[-1].startswith(tag + b" OK")
            continue
        assert lines == [tag + b" BAD " + reason]
        assert all(32 <= byte < 127 for byte in lines[-1])
    assert raw.command(b"f", b"FETCH 1 (FLAGS)")[-1] == b"f OK FETCH termine"  # the session goes on
    raw.close()
