"""Issue 17 item 1: every acknowledged byte is on stable storage before the `250`.

Through the real gateway process (`manage.py runsmtpd`) and a real socket:
- under strace, the raw file of a message and its directory are fsynced before the `250` leaves
  on the socket (the file system's own durability is then the disk's: fsync is the contract);
- under load, a `kill -9` of the gateway leaves no acknowledged message without its row, or
  with a missing or short raw file; `verify_store` then finds the store whole.
"""

import hashlib
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from mailboxes.models import Message, TrustedDomain
from tests.transport.conftest import ROOT, free_port
from tests.transport.test_smtp_gateway import PEER, PEER_SENDER, make_raw

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def start(command: list[str], env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    while b"ready" not in output:
        line = proc.stdout.readline()
        assert line, output.decode(errors="replace")
        output += line
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc


def send_one(port: int, to: str, raw: bytes) -> int:
    """The message's id from the gateway's `250 2.0.0 OK message <id>`."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mx.autre-operateur.mssante.fr")
        client.mail(PEER_SENDER)
        client.rcpt(to)
        code, reply = client.data(raw)
    assert code == 250, reply
    return int(reply.decode().rsplit(" ", 1)[1])


def test_raw_file_attachment_and_their_directories_are_fsynced_before_the_250(cast, process_env, tmp_path):
    assert shutil.which("strace"), "strace (Debian package) is needed for this test"
    TrustedDomain.objects.create(name=PEER)
    port = free_port()
    trace = tmp_path / "strace.txt"
    proc = start(
        [
            "strace",
            "-f",
            "-qq",
            "-y",
            "-s",
            "48",
            "-e",
            "trace=fsync,fdatasync,sendto,write",
            "-e",
            "signal=none",
            "-o",
            str(trace),
            sys.executable,
            "manage.py",
            "runsmtpd",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        process_env,
    )
    try:
        pdf = b"%PDF-1.4\n" + os.urandom(20_000) + b"\n%%EOF\n"
        raw = make_raw(cast.alice_box.address, subject="Durable", body="Bonjour,\n" * 500, attachment=pdf)
        pk = send_one(port, cast.alice_box.address, raw)
    finally:
        # The gateway is strace's child: stop it, strace then ends.
        for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            os.kill(int(child), signal.SIGTERM)
        proc.wait(timeout=30)
    from django.core.files.storage import default_storage

    # What is stored is what the peer sent behind our trace header (Return-Path, Received).
    message = Message.objects.get(pk=pk)
    stored = Path(default_storage.path(message.raw.name)).read_bytes()
    assert stored.endswith(raw) and stored.startswith(b"Return-Path: ")
    digest = hashlib.sha256(stored).hexdigest()
    assert message.sha256 == digest
    lines = trace.read_text().splitlines()

    def synced(pattern: str) -> int:
        """Index of the line where that fsync returned 0 (strace splits a call that another
        thread interrupts into `fsync(…) <unfinished ...>` and `<... fsync resumed>) = 0`)."""
        for index, line in enumerate(lines):
            if re.search(pattern, line):
                pid = line.split()[0]
                if line.rstrip().endswith("= 0"):
                    return index
                for later in range(index + 1, len(lines)):
                    # strace pads the pid ("2812  <... fsync resumed>"): compare fields.
                    if lines[later].split()[0] == pid and "<... fsync resumed>" in lines[later]:
                        assert lines[later].rstrip().endswith("= 0"), lines[later]
                        return later
        raise AssertionError(f"no {pattern!r} in the trace:\n" + "\n".join(lines[-40:]))

    file_synced = synced(rf"fsync\(\d+</[^>]*/raw/{digest[:2]}/{digest}\.eml>")
    directory_synced = synced(rf"fsync\(\d+</[^>]*/raw/{digest[:2]}>")
    # The attachment's own file and directory too (each file with its directories in one job).
    (attachment,) = message.attachments.all()
    assert Path(default_storage.path(attachment.file.name)).read_bytes() == pdf
    part = attachment.sha256
    attachment_synced = synced(rf"fsync\(\d+</[^>]*/att/{part[:2]}/{part}>")
    attachment_directory_synced = synced(rf"fsync\(\d+</[^>]*/att/{part[:2]}>")
    acknowledged = next(i for i, line in enumerate(lines) if f"250 2.0.0 OK message {pk}" in line)
    assert max(file_synced, directory_synced, attachment_synced, attachment_directory_synced) < acknowledged


def test_kill_9_under_load_loses_no_acknowledged_message(cast, process_env):
    TrustedDomain.objects.create(name=PEER)
    port = free_port()
    proc = start([sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)], process_env)
    acknowledged: dict[int, bytes] = {}
    lock = threading.Lock()
    boxes = [cast.alice_box.address, cast.cardio.address, cast.paul_box.address]

    def client(n: int):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                smtp.ehlo("mx.autre-operateur.mssante.fr")
                for i in range(10_000):
                    to = boxes[(n + i) % len(boxes)]
                    raw = make_raw(to, subject=f"Charge {n}-{i}", body=f"Ligne {i}\n" * (200 + 50 * n))
                    smtp.mail(PEER_SENDER)
                    smtp.rcpt(to)
                    code, reply = smtp.data(raw)
                    if code == 250:
                        with lock:
                            acknowledged[int(reply.decode().rsplit(" ", 1)[1])] = raw
        except (OSError, smtplib.SMTPException):
            return  # the gateway was killed mid-dialogue

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert len(acknowledged) >= 30
    from django.core.files.storage import default_storage

    for pk, raw in acknowledged.items():
        message = Message.objects.get(pk=pk)
        path = Path(default_storage.path(message.raw.name))
        stored = path.read_bytes()
        # What the peer sent behind our trace header, whole.
        assert stored.endswith(raw), f"message {pk}: raw file missing or short"
        assert message.sha256 == hashlib.sha256(stored).hexdigest()
    # Every committed row (acknowledged or not: the kill may fall between commit and 250) has
    # its file whole.
    call_command("verify_store")
