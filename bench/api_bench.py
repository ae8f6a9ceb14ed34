"""API benchmark (issue 10): POST /api/v1/messages to one local patient, against the same message
through the SMTP gateway, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_api .venv/bin/python bench/api_bench.py

Drops and re-creates the database named in DATABASE_URL, migrates it, seeds one structure, its
hosted domain, an applicative box with an API key, a trusted peer operator's domain and one
patient (active space, no notification address). Then serves the product with gunicorn (sync
workers, `--workers`, default 2: one per core, as docs/configuration.md advises) and starts the
SMTP gateway (`manage.py runsmtpd`, `--smtpd-processes`, default 2), and alternates rounds
(`--rounds`, default 2):

- API: CLIENTS (default 8) threads, each with a keep-alive HTTP connection, POST the JSON message
  (subject, 2 KB of text) with the key, to the patient;
- SMTP: CLIENTS smtplib connections send the same message (From a professional of the peer
  operator) to the patient through the gateway.

Prints messages per second and client latency p50/p95 per round, and checks every 201 / 250 in
the database at the end. Targets: API ≥ 0.8 × the gateway's messages/s, API p95 ≤ 50 ms.
Options: `-n` messages per round and path (default 1500), `--clients`, `--workers`, `--rounds`.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import free_port, recreate_database  # noqa: E402 - bench/ is on sys.path
from smtp_ingest import (
    bench_env,
    cpu_seconds,
    load,
    machine,
    postgres_cpu_seconds,
    run_clients,
    start_server,
    stop_server,
)

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "ch-bench.mssante.fr"
PEER = "operateur-externe.mssante.fr"
TEXT = (
    "Bonjour,\nvotre compte rendu est disponible.\n"
    + "Ligne du message de banc d'essai, environ soixante caracteres.\n" * 32
)


def seed() -> tuple[str, str]:
    from api.models import ApiKey
    from mailboxes.models import Domain, Mailbox, Structure, TrustedDomain
    from patients.enrolment import enrol_patient
    from tests.factories import make_ins

    structure = Structure.objects.create(name="CH du banc", finess="750000013")
    domain = Domain.objects.create(name=DOMAIN, structure=structure)
    TrustedDomain.objects.create(name=PEER)
    box = Mailbox.objects.create(
        kind=Mailbox.Kind.APPLICATIVE, address=f"dpi_noreply@{DOMAIN}", domain=domain, structure=structure
    )
    key = ApiKey(mailbox=box, name="banc")
    secret = key.issue()
    key.save()
    import datetime

    patient = enrol_patient(
        ins=make_ins(seq=4242), first_names="Paul", birth_name="Banc", birth_date=datetime.date(1958, 3, 14), sex="M"
    )
    return secret, patient.mailbox.address


def start_gunicorn(
    env: dict, workers: int, port: int = 0, threads: int = 1, worker_class: str = "sync"
) -> tuple[subprocess.Popen, int]:
    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mssante.wsgi",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            worker_class if threads == 1 else "gthread",
            "--bind",
            f"127.0.0.1:{port}",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(Path(env["VAR_DIR"]) / "gunicorn.log", "ab"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=5)  # noqa: S310
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def run_api(port: int, secret: str, patient: str, count: int, clients: int) -> tuple[float, int, list[float]]:
    lock = threading.Lock()
    remaining = [count]
    accepted = [0]
    latencies: list[float] = []
    errors: list[str] = []
    body = json.dumps({"to": [patient], "subject": "Compte rendu d'hospitalisation", "text": TEXT}).encode()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json", "Connection": "keep-alive"}

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/messages", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            elapsed = time.perf_counter() - started
            if response.status != 201:
                errors.append(f"{response.status} {payload[:200]!r}")
                continue
            with lock:
                accepted[0] += 1
                latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} API errors, first: {errors[0]}", file=sys.stderr)
    return elapsed, accepted[0], latencies


def smtp_message(patient: str) -> bytes:
    """The same message as the API's, from a professional of the peer operator."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    message = EmailMessage()
    message["From"] = f"Dr Externe <dr.externe@{PEER}>"
    message["To"] = patient
    message["Subject"] = "Compte rendu d'hospitalisation"
    message["Message-ID"] = make_msgid(domain=PEER)
    message.set_content(TEXT)
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def measured(label: str, pid: int, run) -> tuple:
    """Run one round; its throughput, latencies and the CPU per message of the server's processes
    and of PostgreSQL (figures that other load on the machine inflates less than wall time)."""
    cpu_before, pg_before = cpu_seconds(pid), postgres_cpu_seconds()
    elapsed, accepted, latencies = run()
    cpu, pg = cpu_seconds(pid) - cpu_before, postgres_cpu_seconds() - pg_before
    latencies = sorted(latencies)
    return (
        label,
        accepted,
        accepted / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.95)] * 1000,
        cpu * 1000 / max(accepted, 1),
        pg * 1000 / max(accepted, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1500, help="messages per round and path")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (one per core)")
    parser.add_argument("--smtpd-processes", type=int, default=2, help="runsmtpd --processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (>1: gthread workers)")
    parser.add_argument(
        "--worker-class", default="sync", help="gunicorn worker class (gthread keeps connections alive)"
    )
    parser.add_argument("--api-only", action="store_true", help="skip the gateway's rounds (a quick A/B of the API)")
    parser.add_argument("--port-base", type=int, default=0, help="gunicorn on PORT_BASE, the gateway on PORT_BASE+1")
    parser.add_argument(
        "--profile", metavar="FILE", help="only time the request in process (WSGI), then cProfile 300 calls into FILE"
    )
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_api")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    var_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {
        **{k: v for k, v in bench_env(url, var_dir).items() if not k.startswith("CACHE_")},
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "API_RATE_PER_MINUTE": "100000000",
        "MFA_REQUIRED_FOR_PROFESSIONALS": "false",
    }
    os.environ.update(env)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load()}")
    recreate_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    secret, patient = seed()
    from django.db import connection

    connection.close()
    if args.profile:
        profile_in_process(secret, patient, args.profile)
        return

    rows = run_rounds(env, secret, patient, args)
    report(args, rows, var_dir, patient)


def run_rounds(env: dict, secret: str, patient: str, args) -> list[tuple]:
    """gunicorn and the gateway up; a warm-up on both paths, then alternated measured rounds."""
    web, web_port = start_gunicorn(env, args.workers, args.port_base, args.threads, args.worker_class)
    smtpd, smtp_port = start_server(env, args.smtpd_processes, args.port_base + 1 if args.port_base else 0)
    rows = []
    try:
        raw = smtp_message(patient)
        run_api(web_port, secret, patient, 40, args.clients)
        if not args.api_only:
            run_clients(smtp_port, [(patient, make_unique(raw)) for _ in range(40)], args.clients)
        for n in range(1, args.rounds + 1):
            rows.append(
                measured(f"API round {n}", web.pid, lambda: run_api(web_port, secret, patient, args.n, args.clients))
            )
            if args.api_only:
                continue
            batch = [(patient, make_unique(raw)) for _ in range(args.n)]
            rows.append(
                measured(f"SMTP gateway round {n}", smtpd.pid, lambda b=batch: run_clients(smtp_port, b, args.clients))
            )
    finally:
        web.terminate()
        web.wait(timeout=20)
        stop_server(smtpd)
    return rows


def report(args, rows: list[tuple], var_dir: Path, patient: str) -> None:
    from mailboxes.models import Message

    errors = (var_dir / "gunicorn.log").read_text(errors="replace")
    if "Traceback" in errors:
        print("gunicorn errors (last lines):\n" + "\n".join(errors.splitlines()[-30:]), file=sys.stderr)
    stored = Message.objects.filter(entries__mailbox__address=patient).count()
    expected = sum(r[1] for r in rows) + (40 if args.api_only else 80)
    print()
    print(
        f"POST /api/v1/messages vs SMTP gateway, one local patient, {args.clients} clients, "
        f"gunicorn {args.worker_class} workers={args.workers} threads={args.threads}, runsmtpd processes={args.smtpd_processes}, PostgreSQL"
    )
    print(f"{'path':<24}{'accepted':>10}{'msg/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'CPU ms/msg':>12}{'PG ms/msg':>11}")
    for label, accepted, rate, p50, p95, cpu, pg in rows:
        print(f"{label:<24}{accepted:>10}{rate:>10.1f}{p50:>10.1f}{p95:>10.1f}{cpu:>12.1f}{pg:>11.1f}")
    api_rate = statistics.median(r[2] for r in rows if r[0].startswith("API"))
    smtp_rate = statistics.median([r[2] for r in rows if r[0].startswith("SMTP")] or [float("nan")])
    api_p95 = max(r[4] for r in rows if r[0].startswith("API"))
    print(
        f"API / gateway throughput: {api_rate / smtp_rate:.2f} (target >= 0.8); API p95 max {api_p95:.1f} ms (target <= 50)"
    )
    print(f"stored in the patient's box: {stored} (accepted {expected}); load average {load()}")


def profile_in_process(secret: str, patient: str, path: str, count: int = 300) -> None:
    """The API request alone, in this process, through Django's WSGI handler (middleware, DRF,
    delivery, audit; no HTTP server): wall and CPU per call, then a cProfile of `count` calls."""
    import cProfile
    import pstats

    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = json.dumps({"to": [patient], "subject": "Compte rendu d'hospitalisation", "text": TEXT})

    def calls(n: int) -> None:
        for _ in range(n):
            response = client.post("/api/v1/messages", body, content_type="application/json")
            if response.status_code != 201:
                raise SystemExit(f"{response.status_code} {response.content[:300]!r}")

    calls(50)  # warm-up: imports, prepared statements, caches
    wall, cpu = time.perf_counter(), time.process_time()
    calls(count)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"in process: {count} calls, {wall * 1000 / count:.1f} ms wall, {cpu * 1000 / count:.1f} ms CPU per call")
    profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on PostgreSQL
    profiler.runcall(calls, count)
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


def make_unique(raw: bytes) -> bytes:
    from email.utils import make_msgid

    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"message-id:")]
    lines.append(b"Message-ID: " + make_msgid(domain=PEER).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


if __name__ == "__main__":
    main()
