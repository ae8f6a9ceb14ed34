"""MAIL and RCPT of the inbound gateway, over a socket: the exact replies, enhanced codes included.

The gateway answers the common forms of MAIL and RCPT itself (issue 17: aiosmtpd's parser of
RFC 5322 addresses was a measurable part of each message's CPU) and hands every other form to
aiosmtpd's own commands. These tests hold on the code before that change as after it, except
the last, which pins what changed: the common forms no longer go through that parser.
"""

import socket
from contextlib import ExitStack, contextmanager

import aiosmtpd.smtp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailboxes.models import TrustedDomain
from mailboxes.smtp_gateway import GatewaySMTP, advertised_size, max_message_bytes, smtp_kwargs
from tests.transport.conftest import free_port

pytestmark = [pytest.mark.integration]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"
SYNTAX_MAIL = "501 5.5.4 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
SYNTAX_RCPT = "501 5.5.4 Syntax: RCPT TO: <address> [SP <mail-parameters>]"


class Dialogue:
    """A line-by-line SMTP client that returns each reply exactly as sent (lines joined by \\n)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def send(self, line: str) -> str:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@contextmanager
def dialogue(port: int, greeting: str | None = "EHLO mx.autre-operateur.mssante.fr"):
    client = Dialogue(port)
    try:
        if greeting:
            assert client.send(greeting).startswith("250")
        yield client
    finally:
        client.close()


# --- the real gateway, its handler deciding from the database ------------------------------------


@pytest.fixture
def gateway(cast, start_gateway):
    TrustedDomain.objects.create(name=PEER)
    return start_gateway()


@pytest.mark.django_db(transaction=True)
def test_common_mail_and_rcpt_are_accepted_with_enhanced_codes(gateway, cast):
    with dialogue(gateway.port) as client:
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "250 2.1.0 OK"
        assert client.send(f"RCPT TO:<{cast.alice_box.address}>") == "250 2.1.5 OK"
        assert client.send(f"RCPT TO:<{cast.cardio.address}>") == "250 2.1.5 OK"
        assert client.send("RSET") == "250 2.0.0 OK"
        # Parameters as peers send them (smtplib writes size= in lower case), a space after the colon.
        assert client.send(f"mail from: <{PEER_SENDER}> size=10240 BODY=8BITMIME") == "250 2.1.0 OK"
        assert client.send(f"rcpt to: <{cast.alice_box.address}>") == "250 2.1.5 OK"


@pytest.mark.django_db(transaction=True)
def test_null_reverse_path_is_accepted_for_reports(gateway, cast):
    with dialogue(gateway.port) as client:
        assert client.send("MAIL FROM:<>") == "250 2.1.0 OK"
        assert client.send(f"RCPT TO:<{cast.alice_box.address}>") == "250 2.1.5 OK"


@pytest.mark.django_db(transaction=True)
def test_declared_size_over_the_limit_is_552(gateway, cast):
    # What the gateway reads at most (EHLO SIZE): over it, nothing may come in.
    limit = advertised_size()
    assert limit > max_message_bytes()  # room for a patient's automatic return (docs/smtp.md "Size")
    refusal = f"552 5.3.4 Message trop volumineux : la taille maximale est de {limit} octets"
    with dialogue(gateway.port) as client:
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SIZE={limit}") == "250 2.1.0 OK"
        assert client.send("RSET") == "250 2.0.0 OK"
        # Over the cap (the handler's check) and over aiosmtpd's (cap + slack): one reply.
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SIZE={limit + 1}") == refusal
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SIZE={limit * 2}") == refusal


@pytest.mark.django_db(transaction=True)
def test_bad_syntax_and_malformed_addresses(gateway, cast):
    with dialogue(gateway.port) as client:
        assert client.send("MAIL") == SYNTAX_MAIL
        assert client.send(f"MAIL TO:<{PEER_SENDER}>") == SYNTAX_MAIL
        assert client.send("MAIL FROM:") == SYNTAX_MAIL
        assert client.send("MAIL FROM:<@>") == "553 5.1.3 Error: malformed address"
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SIZE=") == SYNTAX_MAIL
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SIZE=dix") == SYNTAX_MAIL
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> BODY=BINARYMIME") == (
            "501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME"
        )
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "250 2.1.0 OK"
        assert client.send("RCPT") == SYNTAX_RCPT
        assert client.send(f"RCPT FROM:<{cast.alice_box.address}>") == SYNTAX_RCPT
        assert client.send("RCPT TO:<@>") == "553 5.1.3 Error: malformed address"


@pytest.mark.django_db(transaction=True)
def test_helo_first_then_mail_before_rcpt_and_no_nested_mail(gateway, cast):
    with dialogue(gateway.port, greeting=None) as client:
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "503 5.5.1 Error: send HELO first"
        assert client.send(f"RCPT TO:<{cast.alice_box.address}>") == "503 5.5.1 Error: send HELO first"
    with dialogue(gateway.port) as client:
        assert client.send(f"RCPT TO:<{cast.alice_box.address}>") == "503 5.5.1 Error: need MAIL command"
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "250 2.1.0 OK"
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "503 5.5.1 Error: nested MAIL command"
    with dialogue(gateway.port, greeting="HELO mx.autre-operateur.mssante.fr") as client:
        # Without EHLO, no parameters.
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SIZE=100") == "501 5.5.4 Syntax: MAIL FROM: <address>"
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "250 2.1.0 OK"


@pytest.mark.django_db(transaction=True)
def test_unknown_parameters_and_smtputf8(gateway, cast):
    with dialogue(gateway.port) as client:
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> RET=HDRS") == (
            "555 5.5.4 MAIL FROM parameters not recognized or not implemented"
        )
        # The gateway does not offer SMTPUTF8 (its replies are ASCII).
        assert client.send(f"MAIL FROM:<{PEER_SENDER}> SMTPUTF8") == "501 5.5.4 Error: SMTPUTF8 disabled"
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "250 2.1.0 OK"
        assert client.send(f"RCPT TO:<{cast.alice_box.address}> NOTIFY=NEVER") == (
            "555 5.5.4 RCPT TO parameters not recognized or not implemented"
        )


@pytest.mark.django_db(transaction=True)
def test_refusals_carry_enhanced_codes(gateway, cast):
    with dialogue(gateway.port) as client:
        untrusted = client.send("MAIL FROM:<dr.inconnu@exemple.com>")
        assert untrusted.startswith("550 5.7.1 "), untrusted
        forged = client.send(f"MAIL FROM:<quelquun@{cast.alice_box.address.split('@')[1]}>")
        assert forged.startswith("550 5.7.1 "), forged
        assert client.send(f"MAIL FROM:<{PEER_SENDER}>") == "250 2.1.0 OK"
        unknown = client.send(f"RCPT TO:<personne@{cast.alice_box.address.split('@')[1]}>")
        assert unknown.startswith("550 5.1.1 "), unknown
        relay = client.send("RCPT TO:<quelquun@exemple.com>")
        assert relay.startswith("550 5.7.1 "), relay
        null = client.send("RCPT TO:<>")
        assert null.startswith("5"), null


# --- the same commands against aiosmtpd's own MAIL and RCPT ---------------------------------


class Recorder:
    """Hooks that record what they are given and show the envelope on NOOP."""

    def __init__(self):
        self.calls: list[tuple] = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.calls.append(("MAIL", address, list(mail_options), envelope.smtp_utf8))
        if address.startswith("refus"):
            return "550 5.7.1 Refuse"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.calls.append(("RCPT", address, list(rcpt_options)))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_NOOP(self, server, session, envelope, arg):
        fields = (envelope.mail_from, envelope.mail_options, envelope.smtp_utf8, envelope.rcpt_tos)
        return "250 " + ascii((*fields, envelope.rcpt_options))


class AiosmtpdCommands(GatewaySMTP):
    """The gateway with aiosmtpd's own MAIL and RCPT: the reference."""

    smtp_MAIL = SMTP.smtp_MAIL
    smtp_RCPT = SMTP.smtp_RCPT


class CommandsController(Controller):
    def __init__(self, smtp_class, handler, **kwargs):
        self.smtp_class = smtp_class
        super().__init__(handler, hostname="127.0.0.1", port=free_port(), **kwargs)

    def factory(self):
        return self.smtp_class(self.handler, **self.SMTP_kwargs)


@contextmanager
def side_by_side(local_part_limit: int = 0, **kwargs):
    gateway_class = type("Limited", (GatewaySMTP,), {"local_part_limit": local_part_limit})
    reference_class = type("LimitedReference", (AiosmtpdCommands,), {"local_part_limit": local_part_limit})
    servers = [CommandsController(cls, Recorder(), **kwargs) for cls in (gateway_class, reference_class)]
    with ExitStack() as started:  # a server that failed to start leaves the other one stopped
        for server in servers:
            server.start()
            started.callback(server.stop)
        yield servers


def transcript(server, greeting: str | None, commands: list[str]) -> tuple[list[str], list[tuple]]:
    server.handler.calls.clear()
    with dialogue(server.port, greeting) as client:
        replies = []
        for command in commands:
            replies.append(client.send(command))
            replies.append(client.send("NOOP"))
    return replies, list(server.handler.calls)


FRAGMENTS = [
    "FROM:", "from:", "TO:", "to:", " ", "  ", "\t", "<", ">", "<>", "@", ".", "..", ",", ":", ";",
    "a", "dr.externe", "x+y", "o'brien", "=?utf-8?q?x?=", "=?", "é", '"q r"', "(c)", "\\", "[127.0.0.1]",
    "autre-operateur.mssante.fr", "-x", "@a.fr,@b.fr:", "refus", "SIZE=", "size=100", "SIZE=99999999",
    "SIZE=1 SIZE=2", "BODY=8BITMIME", "body=7bit", "BODY=", "BODY", "SMTPUTF8", "SMTPUTF8=1", "RET=HDRS",
    "NOTIFY=NEVER", "=", "0",
]  # fmt: skip
ARGUMENTS = st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join)
COMMON = st.sampled_from(["FROM:<dr.externe@autre-operateur.mssante.fr>", "TO:<alice@ch-troispics.mssante.fr>"])
COMMANDS = st.lists(
    st.tuples(st.sampled_from(["MAIL", "RCPT", "RSET"]), st.one_of(ARGUMENTS, COMMON)).map(
        lambda pair: f"{pair[0]} {pair[1]}" if pair[0] != "RSET" else "RSET"
    ),
    min_size=1,
    max_size=5,
)
GREETINGS = st.sampled_from(["EHLO mx.autre-operateur.mssante.fr", "HELO mx.autre-operateur.mssante.fr", None])


@pytest.mark.parametrize(
    "configuration",
    [
        {},
        {"decode_data": True, "enable_SMTPUTF8": True, "local_part_limit": 5, "data_size_limit": 50},
    ],
    ids=["gateway settings", "decoded data, SMTPUTF8, local part limit"],
)
def test_replies_hooks_and_envelope_are_aiosmtpds(configuration):
    """Any MAIL/RCPT line, from fragments of the common and the unusual forms: the gateway's
    replies, the hooks' arguments and the envelope after each command are aiosmtpd's own."""
    kwargs = {**smtp_kwargs(), "data_size_limit": 5000, "decode_data": False, **configuration}
    for name in ("hostname", "tls_context", "require_starttls"):
        kwargs.pop(name)
    with side_by_side(**kwargs) as (gateway, reference):

        @hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(greeting=GREETINGS, commands=COMMANDS)
        def same(greeting, commands):
            assert transcript(gateway, greeting, commands) == transcript(reference, greeting, commands)

        same()


def test_common_forms_skip_aiosmtpds_address_parser(monkeypatch):
    """What the fast path changes: the common forms are answered without aiosmtpd's parser of
    RFC 5322 addresses; any other form still goes through it (and aiosmtpd's own command)."""
    parsed = []
    real = aiosmtpd.smtp.get_angle_addr

    def counting(value):
        parsed.append(value)
        return real(value)

    monkeypatch.setattr(aiosmtpd.smtp, "get_angle_addr", counting)
    kwargs = {**smtp_kwargs(), "data_size_limit": 5000}
    for name in ("hostname", "tls_context", "require_starttls"):
        kwargs.pop(name)
    with side_by_side(**kwargs) as (gateway, _reference):
        replies, _calls = transcript(
            gateway,
            "EHLO mx.autre-operateur.mssante.fr",
            [f"MAIL FROM:<{PEER_SENDER}> size=100 BODY=8BITMIME", "RCPT TO:<alice@ch-troispics.mssante.fr>", "RSET"]
            + ["MAIL FROM:<>", "RSET"],
        )
        assert replies[0::2] == ["250 2.1.0 OK", "250 2.1.5 OK", "250 2.0.0 OK", "250 2.1.0 OK", "250 2.0.0 OK"]
        assert parsed == []
        replies, _calls = transcript(
            gateway, "EHLO mx.autre-operateur.mssante.fr", ["MAIL FROM:<dr (bureau) .externe@autre.fr>"]
        )
        assert replies[0] == "250 2.1.0 OK"
        assert parsed == ["<dr (bureau) .externe@autre.fr>"]
