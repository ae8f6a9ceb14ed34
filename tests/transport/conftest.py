"""Fixtures for mail in and out: the real SMTP gateway on loopback, an aiosmtpd sink standing for
the relay of another operator, a real Celery worker on Redis, and SeaweedFS for S3 storage.

Every server is started on a free loopback port and stopped in `finally`.
"""

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from email import message_from_bytes
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

from tests.celery_broker import broker_url, publishing_to

ROOT = Path(__file__).resolve().parents[2]
# The broker of the worker-based tests; another checkout running its suite beside this one
# sets its own (TEST_TRANSPORT_REDIS_URL), as MSS_TEST_PORTS for ports.
REDIS_URL = broker_url("transport", 2)


def free_port() -> int:
    # aiosmtpd's Controller(port=0) cannot report its port: bind one first, then pass it.
    # `MSS_TEST_PORTS` ("27200-27299") keeps the servers in a range, as tests/clients/conftest.py.
    if os.environ.get("MSS_TEST_PORTS"):
        from tests.clients.conftest import free_port as free_port_in_range

        return free_port_in_range()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class SinkHandler:
    """The relay of another operator: records what it gets, answers from a script."""

    def __init__(self):
        self.data_replies: list[str] = []  # popped one per message; "250 OK" when empty
        self.rcpt_replies: dict[str, str] = {}
        self.delay = 0.0
        self.received: list[SimpleNamespace] = []
        self.data_started = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport is not None else None
        self.received.append(
            SimpleNamespace(
                tls=session.ssl is not None,
                tls_version=ssl_object.version() if ssl_object is not None else "",
                mail_from=envelope.mail_from,
                mail_options=list(envelope.mail_options),
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message_id=message_from_bytes(raw).get("Message-ID", ""),
            )
        )
        self.data_started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.data_replies.pop(0) if self.data_replies else "250 2.0.0 OK"


@pytest.fixture
def sink(settings):
    yield from _sink(settings)


@pytest.fixture
def tls_sink(settings, tls_files):
    """A sink that requires STARTTLS, with a certificate for 127.0.0.1 signed by itself."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    yield from _sink(settings, tls_context=context, require_starttls=True)


def _sink(settings, **smtp_kwargs):
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
    controller.start()
    settings.RELAY_HOST = "127.0.0.1"
    settings.RELAY_PORT = port
    settings.RELAY_USE_TLS = False
    settings.RELAY_RETRY_BASE_SECONDS = 0
    try:
        yield SimpleNamespace(handler=handler, host="127.0.0.1", port=port)
    finally:
        controller.stop()


@pytest.fixture
def start_gateway():
    from mailboxes.smtp_gateway import GatewayController

    controllers = []

    def start():
        controller = GatewayController("127.0.0.1", free_port())
        controller.start()
        controllers.append(controller)
        return controller

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mx.ch-troispics.mssante.fr",
            "-addext",
            "subjectAltName=DNS:mx.ch-troispics.mssante.fr,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return SimpleNamespace(cert=str(cert), key=str(key))


def database_url() -> str:
    """The URL of the test database, for processes started by a test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture
def process_env(tmp_path, settings):
    """Environment for a worker or a command in another process: the test database, Redis DB 2,
    and a media folder that this process shares through override of the default storage."""
    media = tmp_path / "media"
    media.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media), "base_url": None},
        },
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_", "CELERY_", "RELAY_", "EMAIL_", "DATABASE_", "PYTEST", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="mssante.settings",
        SECRET_KEY="transport-test-secret-key-0123456789-abcdefghijklmnop",
        DEBUG="false",
        DATABASE_URL=database_url(),
        DB_CONN_MAX_AGE="0",
        VAR_DIR=str(tmp_path),
        CELERY_BROKER_URL=REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def redis_broker(settings):
    """The test process publishes to Redis DB 2 instead of running tasks in process."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    # A queue of its own: parallel test runs on the machine share Redis DB 2.
    queue = f"transport-{uuid.uuid4().hex[:12]}"
    settings.RELAY_QUEUE = queue
    try:
        with publishing_to(REDIS_URL):
            yield SimpleNamespace(client=client, queue=queue)
    finally:
        client.delete(queue)
        client.close()


class Worker:
    def __init__(self, env, log_path: Path, queue: str | None = None):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mssante", "worker", "-P", "solo", "-c", "1"]
            + ["--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
            + ["-n", f"transport-{os.getpid()}-{time.monotonic_ns()}@localhost"]
            + (["-Q", queue] if queue else []),
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return " ready." in self.output()

        wait_until(ready, timeout=timeout, interval=0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def finished(worker: Worker, task: str) -> int:
    """How many runs of `task` the worker logged as finished (Celery's INFO line
    "Task <name>[<id>] succeeded in …"): a duplicate's end is an event to wait for, not a sleep."""
    return sum(1 for line in worker.output().splitlines() if f"{task}[" in line and " succeeded in " in line)


@pytest.fixture
def start_worker(process_env, tmp_path):
    workers: list[Worker] = []

    def start(queue: str | None = None, **extra_env) -> Worker:
        env = {**process_env, **extra_env, **({"RELAY_QUEUE": queue} if queue else {})}
        worker = Worker(env, tmp_path / f"worker-{len(workers)}.log", queue=queue)
        workers.append(worker)
        worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


# --- SeaweedFS: a real S3 server on loopback (ENVIRONMENT.md) ------------------------------

S3_KEY = "transportkey"
S3_SECRET = "transport-secret-0123456789"
S3_BUCKET = "mssante-test"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    weed = Path(sys.executable).parent / "weed"
    folder = tmp_path_factory.mktemp("seaweedfs")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    (folder / "data").mkdir()
    # Every listener on a free port (not the defaults 8333, 9333, 8888…), so that parallel test
    # runs on the machine, each with its own SeaweedFS, do not meet.
    ports = {
        name: free_port()
        for name in (
            "s3.port",
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "webdav.port",
            "admin.port",
            "admin.port.grpc",
            "debug.port",
        )
    }
    options = [f"-{name}={port}" for name, port in ports.items()] + ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    options.append("-master.telemetry=false")  # no anonymous statistics sent out from a test
    log = open(folder / "weed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(weed), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        + ["-admin.ui=false", f"-bucket={S3_BUCKET}", *options],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
        )

        def bucket_ready():
            if proc.poll() is not None:
                raise AssertionError((folder / "weed.log").read_text(errors="replace")[-2000:])
            try:
                client.head_bucket(Bucket=S3_BUCKET)
                return True
            except Exception:
                return False

        wait_until(bucket_ready, timeout=60, interval=0.25)
        yield SimpleNamespace(
            endpoint=endpoint, client=client, bucket=S3_BUCKET, key=S3_KEY, secret=S3_SECRET, pid=proc.pid, ports=ports
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def s3_storages(seaweedfs, secret=None, prefix="t"):
    return {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": seaweedfs.bucket,
                "endpoint_url": seaweedfs.endpoint,
                "access_key": seaweedfs.key,
                "secret_key": secret or seaweedfs.secret,
                "region_name": "us-east-1",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
                "location": prefix,
            },
        },
    }
