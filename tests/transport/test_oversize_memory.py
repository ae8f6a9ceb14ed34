"""A message dropped for its size is counted, not held (docs/smtp.md "Size"): the real gateway
process (`manage.py runsmtpd`, the product's limits) gets two 60 MB messages to a patient, each
answered by the policy's automatic return; its peak memory (VmHWM, /proc/<pid>/status) does not
grow with what it dropped.
"""

import re
import smtplib
import sys
from pathlib import Path

import pytest

from mailboxes.models import TrustedDomain
from patients.models import PendingReturn
from tests.transport.conftest import free_port
from tests.transport.test_durable_ingest import start
from tests.transport.test_oversize_returns_smtp import MB, PEER, PEER_SENDER, RETURN_REPLY, big_message

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def peak_kb(pid: int) -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def send(port: int, to: str, raw: bytes, options=()) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("mx.autre-operateur.mssante.fr")
        assert client.mail(PEER_SENDER, list(options))[0] == 250
        assert client.rcpt(to)[0] == 250
        return client.data(raw)


def test_a_message_dropped_for_its_size_does_not_grow_the_gateway_memory(cast, process_env):
    TrustedDomain.objects.create(name=PEER)
    port = free_port()
    # Returns are queued in the process's own memory (no worker needed: the row is the proof).
    env = {**process_env, "CELERY_BROKER_URL": "memory://"}
    proc = start([sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)], env)
    patient, pro = cast.paul_patient.address, cast.alice_box.address
    try:
        # Warm up: a delivery to a professional and to a patient, small ones.
        for to in (pro, patient):
            assert send(port, to, big_message([to], 20_000))[0] == 250
        before = peak_kb(proc.pid)
        size = 60 * MB
        raw = big_message([patient], size)
        # SIZE declared over every limit: only the header block is kept from the start.
        assert send(port, patient, raw, [f"SIZE={size}"]) == (250, RETURN_REPLY)
        declared = peak_kb(proc.pid)
        # No SIZE: held until it is over what a box takes (25 MB), then counted only.
        assert send(port, patient, raw) == (250, RETURN_REPLY)
        undeclared = peak_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert PendingReturn.objects.filter(code="too_large").count() == 2
    growth_declared, growth_undeclared = (declared - before) * 1024, (undeclared - before) * 1024
    print(f"peak RSS growth, {size:,} bytes dropped: {growth_declared:,} declared, {growth_undeclared:,} not")
    assert growth_declared < size / 10
    # Bounded by the 25 MB a box may take (held until the message is over it), not by the 60 MB.
    assert growth_undeclared < 35 * MB
