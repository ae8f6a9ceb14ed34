"""Liveness, readiness (a real Redis of the test's own, stopped under it), metrics, heartbeat."""

import os
import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Message, Outbox
from operations.models import Heartbeat
from tests.transport.conftest import free_port


def test_healthz_answers_without_touching_anything(client):
    # No `db` fixture: any database access would raise. pytest-django runs the database tests
    # first; a connection one of them left open in this thread would be probed by the product's
    # request_started hook (api/connections.py, close_old_connections), which is not /healthz's
    # doing: close it first (closing opens nothing).
    connections.close_all()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"
    assert response["X-Request-ID"]


def test_readyz_is_json_with_each_check(db, client, settings):
    settings.CELERY_BROKER_URL = ""  # the embedded set-up: tasks in process, no broker to check
    Heartbeat.objects.create(name=Heartbeat.BEAT, at=timezone.now())
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok", body
    assert set(body["checks"]) >= {"database", "storage", "relay_queue", "notification_queue", "scheduler"}
    assert "broker" not in body["checks"]


def test_an_old_relay_row_and_a_silent_scheduler_warn_and_strict_mode_fails(cast, client, settings):
    message = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="x", text="y"
    ).message
    Outbox.objects.create(message=message, domain="autre.mssante.fr", recipients=["a@autre.mssante.fr"])
    Outbox.objects.filter(message=message).update(created_at=timezone.now() - timedelta(hours=3))
    body = client.get("/readyz").json()
    assert body["status"] == "degraded" and set(body["warnings"]) == {"relay_queue", "scheduler"}
    assert body["checks"]["relay_queue"]["value"] >= 3 * 3600 - 5
    assert client.get("/readyz").status_code == 200
    settings.READYZ_STRICT = True
    assert client.get("/readyz").status_code == 503


def test_a_message_waiting_for_its_search_document_warns(cast, client, settings):
    """Issue 17: the search index's queue (the message row) is watched like the others."""
    from webmail.tasks import index_search_task

    settings.CELERY_BROKER_URL = ""
    Heartbeat.objects.create(name=Heartbeat.BEAT, at=timezone.now())
    message = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="x", text="y"
    ).message
    assert client.get("/readyz").json()["checks"]["search_index"]["status"] == "ok"  # fresh: not late yet
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    body = client.get("/readyz").json()
    assert body["status"] == "degraded" and body["warnings"] == ["search_index"], body
    assert 'mss_queue_depth{queue="search_index"} 1.0' in client.get("/metrics").content.decode()
    index_search_task()
    assert client.get("/readyz").json()["status"] == "ok"


@pytest.fixture
def own_redis():
    """A redis-server of this test only, on a free loopback port (the shared one is never
    touched)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by scripts/test"
    port = free_port()  # in MSS_TEST_PORTS when set, as every server a test starts
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        process.terminate()
        process.wait(10)


def test_readyz_goes_503_and_names_the_broker_when_redis_stops(db, client, settings, own_redis):
    process, url = own_redis
    settings.CELERY_BROKER_URL = url
    Heartbeat.objects.create(name=Heartbeat.BEAT, at=timezone.now())
    up = client.get("/readyz")
    assert up.status_code == 200 and up.json()["checks"]["broker"]["status"] == "ok"

    process.terminate()
    process.wait(10)
    down = client.get("/readyz")
    body = down.json()
    assert down.status_code == 503
    assert body["status"] == "fail" and body["failed"] == ["broker"]
    assert body["checks"]["database"]["status"] == "ok"


def test_heartbeat_task_feeds_the_scheduler_check(db, client, settings):
    from mssante.celery import app

    settings.CELERY_BEAT_SCHEDULE = {"operations-heartbeat": {"task": "operations.tasks.heartbeat", "schedule": 60}}
    assert client.get("/readyz").json()["checks"]["scheduler"]["status"] == "warn"
    app.loader.import_default_modules()
    call_command("runscheduler", "--once")
    check = client.get("/readyz").json()["checks"]["scheduler"]
    assert check["status"] == "ok" and check["value"] < 60


def metric_value(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} " if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_deliveries_refusals_and_read_queues_from_the_database(
    cast, client, django_capture_on_commit_callbacks
):
    before = client.get("/metrics").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        send_from_mailbox(
            cast.alice_box, cast.alice, to=[cast.charlie_box.address, cast.cardio.address], subject="x", text="y"
        )
    Outbox.objects.create(message=Message.objects.get(), domain="autre.mssante.fr", recipients=["a@autre.mssante.fr"])
    text = client.get("/metrics").content.decode()
    delivered = 'source="webmail"'
    assert (
        metric_value(text, "mss_messages_delivered_total", delivered)
        - metric_value(before, "mss_messages_delivered_total", delivered)
        == 2
    )
    assert metric_value(text, "mss_queue_depth", 'queue="relay"') == 1
    assert 'mss_http_request_duration_seconds_bucket{le="0.005",status="2xx",view="operations:metrics"}' in text
    assert metric_value(text, "mss_scheduler_last_run_age_seconds") == -1


def test_metrics_token(db, client, settings):
    settings.METRICS_TOKEN = "jeton-de-test-0123456789"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer mauvais").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer jeton-de-test-0123456789").status_code == 200


def test_staff_land_on_the_dashboard_and_others_on_their_pages(cast, client):
    client.force_login(cast.ada)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/exploitation/"
    page = client.get("/exploitation/").content.decode()
    for text in ("État du service", "Trafic du jour", "Files d'attente", "Liste blanche", "Annuaire national"):
        assert text in page
    assert 'data-testid="directory-freshness">jamais importé<' in page  # never imported in this test
    client.force_login(cast.alice)
    assert client.get("/")["Location"] == "/pro/"
    assert client.get("/exploitation/").status_code == 302  # to the admin login, not the dashboard


def test_counters_add_up_across_processes_in_multiprocess_mode(db, tmp_path, monkeypatch):
    """Two processes (as two gunicorn workers, or runsmtpd and a worker) count SMTP sessions in
    PROMETHEUS_MULTIPROC_DIR; /metrics adds them up."""
    import sys

    from operations.metrics import render

    script = (
        "import sys; from mssante.metrics import SMTP_SESSIONS\nfor _ in range(int(sys.argv[1])): SMTP_SESSIONS.inc()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in (3, 4):
        subprocess.run([sys.executable, "-c", script, str(count)], env=env, check=True, cwd=settings_root())
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = render()[0].decode()
    assert metric_value(text, "mss_smtp_sessions_total") == 7
    assert "mss_queue_depth" in text  # the database gauges are there too


def settings_root():
    from django.conf import settings

    return settings.BASE_DIR
