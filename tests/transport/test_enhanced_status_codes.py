"""RFC 2034 / RFC 3463 on the SMTP gateway: EHLO advertises ENHANCEDSTATUSCODES and every reply
after it carries an enhanced status code of its class, aiosmtpd's own bare replies included
(`250 OK`, `503 Error: need MAIL command`, `221 Bye`...). Not on the greeting, the answer to
HELO/EHLO or a 3xx (RFC 2034 §3). Through a raw socket, as a peer sees them."""

import re
import socket

import pytest

from mailboxes.models import TrustedDomain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"
ENHANCED = re.compile(r"^([245])\d\d ([245])\.\d{1,3}\.\d{1,3}( |$)")


class Peer:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.replies = self.sock.makefile("rb")

    def reply(self) -> list[str]:
        lines = [self.replies.readline().decode().rstrip("\r\n")]
        while lines[-1][3:4] == "-":
            lines.append(self.replies.readline().decode().rstrip("\r\n"))
        return lines

    def send(self, line: str | bytes) -> str:
        self.sock.sendall((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()[-1]

    def close(self):
        self.replies.close()
        self.sock.close()


def assert_enhanced(reply: str) -> None:
    match = ENHANCED.match(reply)
    assert match, reply
    assert match[1] == match[2], reply  # 2xx → 2.x.x, 4xx → 4.x.x, 5xx → 5.x.x


def test_ehlo_advertises_enhanced_status_codes_and_every_reply_carries_one(start_gateway, cast):
    TrustedDomain.objects.create(name=PEER)
    gateway = start_gateway()
    peer = Peer(gateway.port)
    try:
        greeting = peer.reply()[-1]
        assert greeting.startswith("220 ") and not ENHANCED.match(greeting)  # RFC 2034 §3: not on the greeting
        assert peer.send(f"MAIL FROM:<{PEER_SENDER}>") == "503 5.5.1 Error: send HELO first"
        peer.sock.sendall(b"EHLO mx.autre-operateur.mssante.fr\r\n")
        ehlo = peer.reply()
        assert "250-ENHANCEDSTATUSCODES" in ehlo
        assert ehlo[-1] == "250 HELP"  # nor on the answer to EHLO
        alice = cast.alice_box.address
        table = [
            ("NOOP", "250 2.0.0 OK"),
            ("FOO", '500 5.5.2 Error: command "FOO" not recognized'),
            (b"", "500 5.5.2 Error: bad syntax"),
            ("NOOP " + "x" * 600, "500 5.5.2 Command line too long"),
            (f"RCPT TO:<{alice}>", "503 5.5.1 Error: need MAIL command"),
            ("DATA", "503 5.5.1 Error: need RCPT command"),
            ("MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"),
            (f"MAIL FROM:<{PEER_SENDER}> BODY=9BIT", "501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME"),
            (f"MAIL FROM:<{PEER_SENDER}> SMTPUTF8=yes", "501 5.5.4 Error: SMTPUTF8 takes no arguments"),
            (f"MAIL FROM:<{PEER_SENDER}> SMTPUTF8", "501 5.5.4 Error: SMTPUTF8 disabled"),
            (f"MAIL FROM:<{PEER_SENDER}> FOO=1", "555 5.5.4 MAIL FROM parameters not recognized or not implemented"),
            ("MAIL FROM:<a b@>", "553 5.1.3 Error: malformed address"),
            ("STARTTLS", "454 4.7.0 TLS not available"),
            ("VRFY", "501 5.5.4 Syntax: VRFY <address>"),
            (f"VRFY <{alice}>", "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"),
            ("EXPN cardiologie", "502 5.5.1 EXPN not implemented"),
            ("HELP DATA", "250 2.0.0 Syntax: DATA"),
            (f"MAIL FROM:<{PEER_SENDER}>", "250 2.1.0 OK"),
            (f"MAIL FROM:<{PEER_SENDER}>", "503 5.5.1 Error: nested MAIL command"),
            (f"RCPT TO:<{alice}> NOTIFY=NEVER", "555 5.5.4 RCPT TO parameters not recognized or not implemented"),
            (f"RCPT TO:<{alice}>", "250 2.1.5 OK"),
            ("DATA now", "501 5.5.4 Syntax: DATA"),
            ("RSET now", "501 5.5.4 Syntax: RSET"),
            ("RSET", "250 2.0.0 OK"),
            ("QUIT now", "501 5.5.4 Syntax: QUIT"),
            ("HELO", "501 5.5.4 Syntax: HELO hostname"),
        ]
        got = [(command, peer.send(command)) for command, _ in table]
        assert got == table
        for _, reply in got:
            assert_enhanced(reply)
        # HELP lists the commands, with a 2xx code, or a 5xx one for an unknown command.
        assert peer.send("HELP").startswith("250 2.0.0 Supported commands: ")
        assert peer.send("HELP FOO").startswith("501 5.5.4 Supported commands: ")
        # A message line over 1,000 octets: refused at the end of DATA.
        peer.send(f"MAIL FROM:<{PEER_SENDER}>")
        peer.send(f"RCPT TO:<{alice}>")
        assert peer.send("DATA").startswith("354 ")  # 3xx: no enhanced code
        long_line = b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n."
        assert peer.send(long_line) == "500 5.6.0 Line too long (see RFC5321 4.5.3.1.6)"
        assert peer.send("QUIT") == "221 2.0.0 Bye"
    finally:
        peer.close()


def test_a_peer_reading_replies_in_order_still_gets_the_helo_answer_unmarked(start_gateway, cast):
    """RFC 2034 §3: no enhanced code on the answer to HELO; the server's name stays alone."""
    gateway = start_gateway()
    peer = Peer(gateway.port)
    try:
        peer.reply()
        reply = peer.send("HELO mx.autre-operateur.mssante.fr")
        assert reply.startswith("250 ") and not ENHANCED.match(reply)
        assert peer.send("NOOP") == "250 2.0.0 OK"
        assert peer.send("QUIT") == "221 2.0.0 Bye"
    finally:
        peer.close()


def test_replies_a_handler_already_coded_are_not_coded_twice(start_gateway, cast):
    gateway = start_gateway()
    peer = Peer(gateway.port)
    try:
        peer.reply()
        peer.send("EHLO mx.autre-operateur.mssante.fr")
        # The trust space's refusal (the handler's own, already coded), and aiosmtpd's already
        # coded AUTH refusal (538 5.7.11): one code each.
        refused = peer.send("MAIL FROM:<quelquun@ailleurs.example>")
        assert refused.startswith("550 5.7.1 ") and not ENHANCED.match(refused[10:])
        assert peer.send("AUTH PLAIN") == "538 5.7.11 Encryption required for requested authentication mechanism"
    finally:
        peer.close()
