"""Chaos in CI (issue 15 item 18): real Celery workers on a Redis database of their own (flushed at
will), an SMTP peer that can be slowed, stopped and started again, and a database that can be
cut under the SMTP gateway.

Every wait polls a condition with a deadline (`wait_until`), never a fixed sleep.
"""

import asyncio
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from email import message_from_bytes
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from aiosmtpd.controller import Controller
from django.db import connection

from mssante.celery import app
from operations.scheduler import jobs_from_settings, run_due
from tests.celery_broker import broker_url, publishing_to
from tests.patients.conftest import _real_policy  # noqa: F401 - the real MSS-C policy
from tests.transport.conftest import free_port, process_env, start_worker, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
# A Redis database for these tests alone: they FLUSHDB it (TEST_CHAOS_REDIS_URL for a checkout
# running its suite beside another).
CHAOS_REDIS_URL = broker_url("chaos", 13)


def alive(server) -> bool:
    transport = getattr(server, "transport", None)
    return transport is not None and not transport.is_closing()


class ChaosPeer:
    """An SMTP peer (another operator's relay, the notifications' smarthost). A message counts
    as acknowledged only if the 250 could still be written to a live connection: a worker killed
    while the peer waits got no answer, so what it sent then is not acknowledged."""

    def __init__(self):
        self.delay = 0.0
        self.data_replies: list[str] = []
        self.received: list[SimpleNamespace] = []
        self.acknowledged: list[SimpleNamespace] = []
        self.data_started = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        item = SimpleNamespace(rcpt_tos=list(envelope.rcpt_tos), message_id=message_from_bytes(raw)["Message-ID"])
        self.received.append(item)
        self.data_started.set()
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline and alive(server):
            await asyncio.sleep(0.05)
        reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 OK"
        if reply.startswith("250") and alive(server):
            self.acknowledged.append(item)
        return reply

    def acked(self, message_id: str) -> int:
        wanted = (message_id or "").strip("<>")
        return sum(1 for item in self.acknowledged if (item.message_id or "").strip("<>") == wanted)


@pytest.fixture
def peer(settings):
    handler = ChaosPeer()
    port = free_port()
    state = SimpleNamespace(handler=handler, host="127.0.0.1", port=port, controller=None)

    def start():
        state.controller = Controller(handler, hostname="127.0.0.1", port=port)
        state.controller.start()

    def stop():
        if state.controller is not None:
            state.controller.stop()
            state.controller = None

    state.start, state.stop = start, stop
    start()
    settings.RELAY_HOST, settings.RELAY_PORT, settings.RELAY_USE_TLS = "127.0.0.1", port, False
    try:
        yield state
    finally:
        stop()


@pytest.fixture
def chaos_broker(settings):
    """The test process publishes to Redis DB 13, on a queue of its own."""
    client = redis.Redis.from_url(CHAOS_REDIS_URL)
    client.flushdb()
    queue = f"chaos-{uuid.uuid4().hex[:12]}"
    settings.RELAY_QUEUE = queue
    try:
        with publishing_to(CHAOS_REDIS_URL):
            yield SimpleNamespace(client=client, queue=queue, url=CHAOS_REDIS_URL)
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def worker_env(peer, chaos_broker):
    """What a worker needs: the broker, the queue, the peer as relay and as smarthost, and
    retries in seconds rather than minutes."""
    return {
        "queue": chaos_broker.queue,
        "CELERY_BROKER_URL": chaos_broker.url,
        "RELAY_HOST": peer.host,
        "RELAY_PORT": str(peer.port),
        "EMAIL_HOST": peer.host,
        "EMAIL_PORT": str(peer.port),
        "RELAY_RETRY_BASE_SECONDS": "1",
        "RELAY_RETRY_MAX_SECONDS": "2",
        "SITE_URL": "https://messagerie.exemple.fr",
    }


def run_sweepers(settings) -> None:
    """The beat jobs of the three queues, run as `manage.py runscheduler` runs them, with the
    delays shortened so that what a killed worker left is taken back now."""
    settings.RELAY_SENDING_TIMEOUT_SECONDS = 0
    settings.RELAY_SWEEP_GRACE_SECONDS = 0
    app.loader.import_default_modules()
    wanted = {
        "mailboxes.tasks.sweep_outbox",
        "patients.tasks.sweep_notifications",
        "patients.tasks.sweep_automatic_returns",
    }
    jobs = [job for job in jobs_from_settings(app) if job.task in wanted]
    assert {job.task for job in jobs} == wanted
    ran, _wait = run_due(app, jobs, force=True)
    assert len(ran) == 3


# --- A database that can be cut under the gateway ------------------------------------------------


class TcpProxy:
    """127.0.0.1:port → the database server. `cut()` drops every connection and refuses new
    ones until `restore()`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket):
        sockets = [a, b]
        try:
            while self.open.is_set():
                ready, _, _ = select.select(sockets, [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            pass
        finally:
            for sock in sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def cut(self):
        self.open.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, upstream in pairs:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restore(self):
        self.open.set()

    def close(self):
        self.stopped = True
        self.cut()
        self.listener.close()


class SqliteLock:
    """SQLite has no server to cut: an exclusive lock held by another connection makes every
    query of the gateway fail (after SQLITE_TIMEOUT) the way a lost database does."""

    def __init__(self, path: str):
        self.path = path
        self.conn = None

    def cut(self):
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def restore(self):
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None

    def close(self):
        self.restore()


@pytest.fixture
def database_cut(process_env):  # noqa: F811
    """(environment for a process whose database can be cut, the cut)."""
    db = connection.settings_dict
    env = dict(process_env)
    if connection.vendor == "postgresql":
        proxy = TcpProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)))
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        env["DATABASE_URL"] = f"postgres://{user}{password}@127.0.0.1:{proxy.port}/{db['NAME']}"
        cut = proxy
    else:
        env["SQLITE_TIMEOUT"] = "1"
        cut = SqliteLock(db["NAME"])
    try:
        yield env, cut
    finally:
        cut.close()


@pytest.fixture
def start_gateway_process(tmp_path):
    procs = []

    def start(env) -> int:
        port = free_port()
        log = open(tmp_path / f"gateway-{len(procs)}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))

        def listening():
            if proc.poll() is not None:
                raise AssertionError((tmp_path / f"gateway-{len(procs) - 1}.log").read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=30, interval=0.1)
        return port

    try:
        yield start
    finally:
        for proc, log in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
