"""RULES.md §3 automatic return 3, "maximum size exceeded", for a message from another operator,
through the real gateway on loopback (smtplib): a message over 25 MB to a patient is answered
by the policy's automatic return, relayed to the sender's operator, as one from this operator
would be; never stored. Professionals, the null sender and automatic messages get the plain
`552 5.3.4` (docs/smtp.md "Size").
"""

import smtplib
from email import message_from_bytes
from email.utils import make_msgid

import pytest

from audit.models import AuditEvent
from mailboxes.models import Entry, Message, TrustedDomain
from patients.models import PendingReturn
from patients.policy import REFUSALS, system_address

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"
MB = 1024 * 1024
RETURN_REPLY = b"2.0.0 OK, non distribue : un retour automatique est envoye a l'expediteur"


@pytest.fixture
def outside(cast, settings, sink):
    """Another operator's relay (`sink`, where the returns go) and the real limits."""
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.TRUST_ALL_MSSANTE = False
    settings.MAILBOX_MAX_MESSAGE_BYTES = settings.PATIENT_MAX_MESSAGE_BYTES = 25 * MB
    settings.SMTP_OVERSIZE_RETURN_MAX_BYTES = 100 * MB
    TrustedDomain.objects.create(name=PEER)
    return sink


@pytest.fixture
def small_limits(settings):
    """The same rules with small limits: 100 KB for every box, 1 MB read at most."""
    settings.MAILBOX_MAX_MESSAGE_BYTES = settings.PATIENT_MAX_MESSAGE_BYTES = 100_000
    settings.SMTP_OVERSIZE_RETURN_MAX_BYTES = 1_000_000


def big_message(to: list[str], size: int, *, sender: str = PEER_SENDER, extra: str = "") -> bytes:
    """A message of exactly `size` bytes: headers, then lines of 76 characters."""
    head = (
        f"From: Dr Externe <{sender}>\r\nTo: {', '.join(to)}\r\nSubject: SENTINELLE-OBJET imagerie\r\n"
        f"Message-ID: {make_msgid(domain=PEER)}\r\n{extra}MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    lines, rest = divmod(size - len(head), 78)
    raw = head + (b"A" * 76 + b"\r\n") * lines + (b"B" * (rest - 2) + b"\r\n" if rest >= 2 else b"")
    raw += b"C" * (size - len(raw))
    assert len(raw) == size
    return raw


def client_for(gateway) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gateway.port, timeout=60)
    client.ehlo("mx.autre-operateur.mssante.fr")
    return client


def text_of(raw: bytes) -> str:
    return message_from_bytes(raw).get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")


def assert_one_too_large_return(cast, outside, address: str) -> None:
    """The patient's box got nothing; the sender's operator got the policy's return."""
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()
    # Nothing of the refused message is stored: the only message is the return itself.
    assert list(Message.objects.values_list("from_address", flat=True)) == [system_address()]
    [pending] = PendingReturn.objects.all()
    assert (pending.code, pending.sender, pending.recipient) == ("too_large", PEER_SENDER, address)
    [got] = outside.handler.received
    assert got.mail_from == "<>" and got.rcpt_tos == [PEER_SENDER]
    returned = message_from_bytes(got.raw)
    assert returned["Auto-Submitted"] == "auto-replied" and system_address() in returned["From"]
    text = text_of(got.raw)
    assert REFUSALS["too_large"].happened in text and REFUSALS["too_large"].to_do in text
    assert b"SENTINELLE" not in got.raw  # no subject or body of the original
    # Audited as any refusal answered by returns: one whole-message refusal, its code.
    [event] = AuditEvent.objects.filter(action="message.refused")
    assert (event.outcome, event.actor_label, event.message_id) == ("too_large", "smtp", None)


@pytest.mark.parametrize("declared", [False, True], ids=["no-size", "size-declared"])
def test_30_mb_to_a_patient_from_another_operator_gets_the_automatic_return(cast, outside, start_gateway, declared):
    address = cast.paul_patient.address
    raw = big_message([address], 30 * MB)
    gateway = start_gateway()
    with client_for(gateway) as client:
        # EHLO SIZE is the oversize-return cap, so a peer that trusts it sends at all.
        assert client.esmtp_features["size"] == str(100 * MB)
        assert client.mail(PEER_SENDER, [f"SIZE={len(raw)}"] if declared else [])[0] == 250
        assert client.rcpt(address)[0] == 250
        code, reply = client.data(raw)
    assert (code, reply) == (250, RETURN_REPLY)
    assert_one_too_large_return(cast, outside, address)


def test_one_byte_over_25_mb_gets_the_return_too(cast, outside, start_gateway):
    """Over the limit by less than the gateway's reading slack: the same answer."""
    address = cast.paul_patient.address
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.sendmail(PEER_SENDER, [address], big_message([address], 25 * MB + 1)) == {}
    assert_one_too_large_return(cast, outside, address)


def test_declared_size_over_the_mailbox_limit_refuses_professionals_at_rcpt(cast, outside, small_limits, start_gateway):
    address = cast.paul_patient.address
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.esmtp_features["size"] == "1000000"
        assert client.mail(PEER_SENDER, ["SIZE=100001"])[0] == 250
        code, reply = client.rcpt(cast.alice_box.address)
        assert (code, reply) == (
            552,
            b"5.3.4 Le message pese 100001 octets une fois encode : la limite est de 100000 octets.",
        )
        assert client.rcpt(address)[0] == 250  # its return follows the data
        code, reply = client.data(big_message([address], 100_001))
        assert (code, reply) == (250, RETURN_REPLY)
        # Over the cap: refused at MAIL, whoever receives it.
        code, reply = client.mail(PEER_SENDER, ["SIZE=1000001"])
        assert (code, reply) == (552, b"5.3.4 Message trop volumineux : la taille maximale est de 1000000 octets")
    assert_one_too_large_return(cast, outside, address)


def test_over_the_cap_without_size_is_552_and_nothing_is_returned(cast, outside, small_limits, start_gateway):
    address = cast.paul_patient.address
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(address)[0] == 250
        code, reply = client.data(big_message([address], 1_200_000))
        assert (code, reply[:5]) == (552, b"5.3.4")
        # The connection goes on: the next message is answered as any.
        assert (
            client.sendmail(PEER_SENDER, [cast.alice_box.address], big_message([cast.alice_box.address], 5_000)) == {}
        )
    assert not PendingReturn.objects.exists() and outside.handler.received == []
    assert Entry.objects.get().mailbox_id == cast.alice_box.pk


def test_a_professional_among_the_recipients_makes_it_a_plain_552(cast, outside, small_limits, start_gateway):
    """No SIZE declared, over the limit, a professional and a patient: 552 for the whole
    message, nothing stored, nothing returned (the sender's own MTA tells the sender)."""
    to = [cast.paul_patient.address, cast.alice_box.address]
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.mail(PEER_SENDER)[0] == 250  # no SIZE=: the size is known after DATA only
        assert all(client.rcpt(address)[0] == 250 for address in to)
        code, reply = client.data(big_message(to, 300_000))
    assert code == 552 and reply.startswith(b"5.3.4 Le message pese "), reply
    assert not Message.objects.exists() and not PendingReturn.objects.exists()
    assert outside.handler.received == []


def test_null_sender_over_the_limit_is_552_and_gets_no_return(cast, outside, small_limits, start_gateway):
    address = cast.paul_patient.address
    report = big_message([address], 300_000, sender=f"mailer-daemon@{PEER}")
    gateway = start_gateway()
    with client_for(gateway) as client:
        assert client.mail("<>")[0] == 250
        assert client.rcpt(address)[0] == 250
        code, reply = client.data(report)
        assert (code, reply[:5]) == (552, b"5.3.4")
        # Declared: nothing could answer it, so refused at RCPT already.
        assert client.mail("<>", ["SIZE=300000"])[0] == 250
        code, reply = client.rcpt(address)
        assert (code, reply[:5]) == (552, b"5.3.4")
    assert not PendingReturn.objects.exists() and outside.handler.received == []
    assert not Message.objects.exists()


def test_an_automatic_message_over_the_limit_is_552_saying_no_return_is_sent(
    cast, outside, small_limits, start_gateway
):
    """RFC 3834: nothing automatic answers an `Auto-Submitted` message."""
    address = cast.paul_patient.address
    gateway = start_gateway()
    with client_for(gateway) as client:
        raw = big_message([address], 300_000, extra="Auto-Submitted: auto-generated\r\n")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(PEER_SENDER, [address], raw)
    assert refused.value.smtp_code == 552
    assert refused.value.smtp_error.startswith(b"5.3.4 Message trop volumineux pour un patient")
    assert refused.value.smtp_error.endswith(b"le message refuse est lui-meme un message automatique.")
    assert not PendingReturn.objects.exists() and outside.handler.received == []
