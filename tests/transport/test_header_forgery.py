"""An author hidden from the gateway's parse, found from outside (a peer probing the gateway, the
sixteenth sitting): header shapes that Python's e-mail parser does not read as a `From:` field
(a space or a tab before the colon, a line without a colon above `From:`, a `From :` first line)
were accepted with the envelope sender as author, while the raw bytes kept the forged field
that mail clients read (the product's own IMAP server showed a colleague of ours as author). A
message without any readable `From:` was accepted too. Now every such message is refused at the
end of DATA and nothing is stored; an ordinary message from the peer still goes in."""

import smtplib
from email.utils import make_msgid

import pytest

from mailboxes.models import Message, TrustedDomain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
SENDER = f"dr.externe@{PEER}"


def message(header_lines: list[str], to: str) -> bytes:
    fields = [*header_lines, f"To: <{to}>", "Subject: Demande d'avis", f"Message-ID: {make_msgid(domain=PEER)}"]
    return ("\r\n".join(fields) + "\r\n\r\nBonjour,\r\nune question.\r\n").encode()


@pytest.fixture
def send(cast, start_gateway):
    TrustedDomain.objects.create(name=PEER)
    gateway = start_gateway()

    def send(header_lines: list[str]) -> tuple[int, str]:
        to = cast.alice_box.address
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
            client.ehlo(f"mx.{PEER}")
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt(to)[0] == 250
            try:
                code, reply = client.data(message(header_lines, to))
            except smtplib.SMTPDataError as exc:
                code, reply = exc.smtp_code, exc.smtp_error
        return code, reply.decode()

    return send


def colleague(cast) -> str:
    return f'"Dr Hugo BERNARD" <hugo.bernard@{cast.d_troispics.name}>'


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda c: [f"From: <{SENDER}>", f"From : {colleague(c)}"], id="space-before-colon"),
        pytest.param(lambda c: [f"From: <{SENDER}>", f"From\t: {colleague(c)}"], id="tab-before-colon"),
        pytest.param(lambda c: [f"From : {colleague(c)}", f"Sender: <{SENDER}>"], id="first-line-from-space"),
        pytest.param(
            lambda c: [f"Sender: <{SENDER}>", "une ligne sans deux-points", f"From: {colleague(c)}"],
            id="line-without-colon",
        ),
    ],
)
def test_a_header_line_that_is_not_a_field_is_refused_554_and_nothing_is_stored(cast, send, shape):
    code, reply = send(shape(cast))
    assert code == 554
    assert reply.startswith("5.6.0 Les en-tetes du message sont mal formes")
    assert "Malformed header block" in reply
    assert not Message.objects.exists()


@pytest.mark.parametrize("lines", [[], ["From:"], ["From: Dr Externe"]], ids=["no-from", "empty", "name-only"])
def test_a_message_from_outside_without_a_readable_author_is_refused(cast, send, lines):
    code, reply = send(lines)
    assert code == 550
    assert reply.startswith("5.7.1 Le message n'a pas d'en-tete From lisible")
    assert not Message.objects.exists()


def test_an_ordinary_message_from_the_peer_still_goes_in(cast, send):
    code, reply = send([f"From: Dr Externe <{SENDER}>"])
    assert code == 250, reply
    stored = Message.objects.get()
    assert stored.from_address == SENDER
