"""Servers of the desktop-client tests (issue 11): the real IMAP and submission listeners on
loopback ports 14300-14399, each in a thread with its own event loop, over the test database
(transactional, so that their threads see what the test wrote).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import imaplib
import os
import random
import socket
import threading
from email import policy
from email.message import EmailMessage

import pytest


def _ports() -> range:
    """14300-14399, or the range `MSS_TEST_PORTS` gives ("27200-27299") when several checkouts
    run their tests side by side on one machine."""
    first, _, last = os.environ.get("MSS_TEST_PORTS", "14300-14399").partition("-")
    return range(int(first), int(last) + 1)


PORTS = _ports()
# Ports handed out lately by this process: a test often takes several before it starts the
# servers that bind them (SeaweedFS takes twelve), so a port that is free now may be another
# caller's already. Sixteen at most (a quarter of a small range): the rest of the range stays
# available to a long run.
_GIVEN: collections.deque[int] = collections.deque(maxlen=min(16, max(len(PORTS) // 4, 1)))
_GIVEN_LOCK = threading.Lock()


def free_port() -> int:
    """A port of PORTS (MSS_TEST_PORTS) that binds now and that this process has not handed out
    lately."""
    with _GIVEN_LOCK:
        ports = [port for port in PORTS if port not in _GIVEN]
        random.shuffle(ports)
        for port in ports:
            with socket.socket() as probe:
                # As the servers bind (SO_REUSEADDR): a port whose last connections wait in
                # TIME_WAIT is free for them; one something listens on is not.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _GIVEN.append(port)
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


class LoopThread:
    """An asyncio loop in a thread: `call(coroutine)` runs it there and returns its result."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class ImapFixture:
    def __init__(self):
        self.thread = LoopThread()
        self.server = None
        self.port = None
        self.tls_port = None

    def start(self, tls_port: bool = False, workers: int = 3):
        from clients.imap.server import ImapServer

        self.port = self.port or free_port()
        if tls_port and not self.tls_port:
            self.tls_port = free_port()

        async def go():
            server = ImapServer(workers=workers)
            await server.start("127.0.0.1", self.port, self.tls_port)
            return server

        self.server = self.thread.call(go())
        return self

    def stop(self):
        if self.server is not None:
            self.thread.call(self.server.stop())
            self.server = None

    def client(self, login: str | None = None, password: str | None = None) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        if login:
            client.login(login, password)
        return client


@pytest.fixture
def imap(transactional_db, cast):
    fixture = ImapFixture().start()
    yield fixture
    fixture.stop()
    fixture.thread.close()


@pytest.fixture
def make_imap(transactional_db):
    """Start a server after the test changed settings (TLS, PSC...)."""
    made = []

    def make(**kwargs):
        fixture = ImapFixture().start(**kwargs)
        made.append(fixture)
        return fixture

    yield make
    for fixture in made:
        fixture.stop()
        fixture.thread.close()


class SubmissionFixture:
    def __init__(self):
        self.thread = LoopThread()
        self.port = free_port()

        async def go():
            from clients.submission import start

            return await start("127.0.0.1", self.port)

        self.server, self.handler = self.thread.call(go())

    def stop(self):
        async def go():
            self.server.close()
            await self.server.wait_closed()

        self.thread.call(go())
        self.handler.close()
        self.thread.close()


@pytest.fixture
def make_submission(transactional_db):
    made = []

    def make():
        fixture = SubmissionFixture()
        made.append(fixture)
        return fixture

    yield make
    for fixture in made:
        fixture.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A throw-away self-signed certificate for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def with_tls(settings, tls_files):
    settings.CLIENTS_TLS_CERT, settings.CLIENTS_TLS_KEY = tls_files
    return tls_files


def build(
    sender: str,
    to: list[str],
    subject: str = "Compte rendu",
    body: str = "Bonjour,\nvoici le compte rendu.\n",
    message_id=None,
    attachments=(),
) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = "Sun, 22 Nov 2026 08:00:00 +0100"
    message["Message-ID"] = message_id or f"<{random.getrandbits(64):x}@{sender.split('@')[1]}>"
    message.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def deliver(cast, to_box, subject="Compte rendu", body="Bonjour,\nvoici le compte rendu.\n", attachments=()):
    """Charlie sends a message through the delivery path (as the webmail does)."""
    from mailboxes.delivery import send_message

    raw = build(cast.charlie_box.address, [to_box.address], subject=subject, body=body, attachments=attachments)
    return send_message(
        raw,
        envelope_from=cast.charlie_box.address,
        envelope_to=[to_box.address],
        source="webmail",
        actor=cast.charlie,
        sender_mailbox=cast.charlie_box,
    ).message
