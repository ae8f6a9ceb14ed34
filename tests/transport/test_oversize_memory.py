"""A message dropped for its size is counted, not held (docs/smtp.md "Size"): the real gateway
process (`manage.py runsmtpd`, the product's limits) gets two 60 MB messages to a patient, each
answered by the policy's automatic return; its peak memory (VmHWM, /proc/<pid>/status) does not
grow with what it dropped.
"""

import os
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
from tests.transport.test_smtp_gateway import make_raw

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def peak_kb(pid: int) -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def send(port: int, to: str, raw: bytes, options=()) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("mx.autre-operateur.mssante.fr")
        assert client.mail(PEER_SENDER, list(options))[0] == 250
        assert client.rcpt(to)[0] == 250
        return client.data(raw)


def start_gateway(process_env) -> tuple:
    TrustedDomain.objects.create(name=PEER)
    port = free_port()
    # Returns are queued in the process's own memory (no worker needed: the row is the proof).
    env = {**process_env, "CELERY_BROKER_URL": "memory://"}
    return start([sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)], env), port


def test_a_message_dropped_for_its_size_does_not_grow_the_gateway_memory(cast, process_env):
    proc, port = start_gateway(process_env)
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


def test_a_25_mb_message_that_is_kept_still_costs_about_twice_its_size(cast, process_env):
    """What bench/smtp_ingest.py measures (bench/RESULTS.md: 2.02x the message for the gateway's
    DATA reader against 4.0x for aiosmtpd's): a message within the limit, with its PDF, held,
    parsed and stored, costs no more since the reader also counts."""
    proc, port = start_gateway(process_env)
    pro = cast.alice_box.address
    try:
        for _ in range(5):
            assert send(port, pro, make_raw(pro, body="Bonjour,\n" * 1000))[0] == 250
        before = peak_kb(proc.pid)
        raw = make_raw(pro, attachment=b"%PDF-1.4\n" + os.urandom(18_500_000))
        assert 25 * MB - 1_000_000 < len(raw) <= 25 * MB
        assert send(port, pro, raw)[0] == 250
        after = peak_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    growth = (after - before) * 1024
    print(f"peak RSS growth, {len(raw):,} bytes kept: {growth:,} ({growth / len(raw):.2f}x)")
    assert growth < 2.5 * len(raw)
