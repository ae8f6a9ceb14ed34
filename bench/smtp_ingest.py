"""SMTP ingest benchmark (issue 3): messages committed per second through the real gateway.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_smtp .venv/bin/python bench/smtp_ingest.py

Drops and re-creates the database named in DATABASE_URL, migrates it, seeds one structure, one
hosted domain, 20 mailboxes and a trusted peer domain, then starts `manage.py runsmtpd` as a
subprocess (local file storage in a temporary folder) and measures:

1. peak RSS growth of the server while it ingests one message of about 25 MB
   (VmHWM from /proc/<pid>/status, before and after);
2. messages committed per second with CLIENTS concurrent smtplib clients (one connection each,
   several messages per connection), for N messages of 10 KB and N with a 100 KB PDF.

Every accepted message is counted again in the database at the end. Options: `-n N`
(messages per kind, default 2000), `--clients 4`, `--processes P` (runsmtpd --processes),
`--profile FILE` (cProfile of the delivery path: send_message in process, 300 messages of 10 KB).
"""

import argparse
import os
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from common import free_port, postgres_cpu_seconds, recreate_database  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
PEER = "operateur-externe.mssante.fr"
DOMAIN = "ch-bench.mssante.fr"
BOXES = 20


def vm_hwm_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server and of its forked gateway processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPU ({cpu}), Python {sys.version.split()[0]}"


def make_message(to: str, *, body_bytes: int = 0, pdf: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Dr Externe <dr.externe@{PEER}>"
    message["To"] = to
    message["Subject"] = "Compte rendu d'hospitalisation"
    message["Message-ID"] = make_msgid(domain=PEER)
    line = "Texte du compte rendu, ligne de 72 caracteres environ, pour le banc. \n"
    message.set_content(line * max(1, body_bytes // len(line)))
    if pdf is not None:
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename="compte-rendu.pdf")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def fake_pdf(size: int) -> bytes:
    # Incompressible bytes inside a PDF envelope, so base64 has real work to do.
    return b"%PDF-1.4\n" + os.urandom(size - 16) + b"\n%%EOF\n"


def run_clients(port: int, messages: list[tuple[str, bytes]], clients: int) -> tuple[float, int, list[float]]:
    """Send all messages with `clients` threads; returns elapsed seconds, accepted count, latencies."""
    lock = threading.Lock()
    queue = list(messages)
    accepted = [0]
    latencies: list[float] = []
    errors: list[str] = []

    def worker():
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.ehlo("mx.operateur-externe.mssante.fr")
            while True:
                with lock:
                    if not queue:
                        return
                    to, raw = queue.pop()
                started = time.perf_counter()
                try:
                    client.sendmail(f"dr.externe@{PEER}", [to], raw)
                except smtplib.SMTPException as exc:
                    errors.append(repr(exc))
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    accepted[0] += 1
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    return elapsed, accepted[0], latencies


def start_server(env: dict, processes: int, port: int = 0) -> tuple[subprocess.Popen, int]:
    port = port or free_port()
    command = [sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)]
    if processes > 1:
        command += ["--processes", str(processes)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    while b"ready" not in output:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"runsmtpd did not start:\n{output.decode(errors='replace')}")
        output += line
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="messages per kind")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of send_message to FILE and print its top")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_smtp")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    var_dir = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
    env = bench_env(url, var_dir)
    os.environ.update(env)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load()}")
    try:
        recreate_database(url)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        addresses = seed()
        profiled = profile(addresses, args.profile) if args.profile else 0
        memory = measure_memory(env, addresses)
        rows = measure_throughput(env, addresses, args)
        report(args, rows, memory, count_messages(), profiled)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def bench_env(url: str, var_dir: Path) -> dict:
    """The gateway's environment: this database, files in `var_dir`, no broker, relay or S3."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "CELERY_", "RELAY_", "EMAIL_"))},
        "DJANGO_SETTINGS_MODULE": "mssante.settings",
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "VAR_DIR": str(var_dir),
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "600",
    }


def measure_memory(env: dict, addresses: list[str]) -> tuple[int, int, int]:
    """Peak RSS (kB, before and after) of a fresh server receiving one 25 MB message, and its size."""
    proc, port = start_server(env, 1)
    try:
        # Five distinct messages (the delivery path keeps one copy of a Message-ID per box).
        warm_up = [(addresses[0], make_message(addresses[0], body_bytes=10_000)) for _ in range(5)]
        run_clients(port, warm_up, 1)
        before = vm_hwm_kb(proc.pid)
        big = make_message(addresses[1], pdf=fake_pdf(18_500_000))
        size = len(big)
        _, ok, _ = run_clients(port, [(addresses[1], big)], 1)
        del big
        after = vm_hwm_kb(proc.pid)
    finally:
        stop_server(proc)
    assert ok == 1, "the 25 MB message was refused"
    return before, after, size


def measure_throughput(env: dict, addresses: list[str], args) -> list[tuple]:
    """Per kind of message: size, accepted, rate, p50/p95 ms, gateway and PostgreSQL CPU ms/msg."""
    proc, port = start_server(env, args.processes)
    rows = []
    try:
        pdf = fake_pdf(100_000)
        kinds = [
            ("10 KB text", lambda to: make_message(to, body_bytes=10_000)),
            ("100 KB PDF attachment", lambda to: make_message(to, body_bytes=2_000, pdf=pdf)),
        ]
        run_clients(port, [(a, make_message(a, body_bytes=10_000)) for a in addresses[:8]], args.clients)
        for label, build in kinds:
            batch = [(addresses[i % BOXES], build(addresses[i % BOXES])) for i in range(args.n)]
            message_size = statistics.mean(len(raw) for _, raw in batch)
            cpu_before, pg_before = cpu_seconds(proc.pid), postgres_cpu_seconds()
            elapsed, accepted, latencies = run_clients(port, batch, args.clients)
            cpu = cpu_seconds(proc.pid) - cpu_before
            pg_cpu = postgres_cpu_seconds() - pg_before
            latencies.sort()
            p50, p95 = latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.95)] * 1000
            per_message = 1000 / max(accepted, 1)
            rows.append(
                (label, message_size, accepted, accepted / elapsed, p50, p95, cpu * per_message, pg_cpu * per_message)
            )
    finally:
        stop_server(proc)
    return rows


def report(args, rows: list[tuple], memory: tuple[int, int, int], committed: int, profiled: int) -> None:
    before, after, size = memory
    growth = (after - before) * 1024
    print()
    print(f"SMTP ingest, {args.clients} clients, runsmtpd processes={args.processes}, PostgreSQL, local file storage")
    print(f"load average at the end: {load()} (other work on the machine skews the rates)")
    print(
        "| messages | size (bytes) | accepted | committed/s | p50 ms | p95 ms "
        "| gateway CPU ms/msg | PostgreSQL CPU ms/msg |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, message_size, accepted, rate, p50, p95, cpu_ms, pg_ms in rows:
        print(
            f"| {label} | {message_size:,.0f} | {accepted} | {rate:,.0f} | {p50:.1f} | {p95:.1f} "
            f"| {cpu_ms:.1f} | {pg_ms:.1f} |"
        )
    print()
    print(
        f"one message of {size:,} bytes: server peak RSS (VmHWM) {before / 1024:,.1f} MB -> {after / 1024:,.1f} MB, "
        f"growth {growth / 1e6:,.1f} MB = {growth / size:.2f}x the message"
    )
    expected = sum(r[2] for r in rows) + 5 + 1 + 8
    print(f"messages in the database: {committed} (accepted over SMTP: {expected}, profiled in process: {profiled})")
    if committed != expected + profiled:
        raise SystemExit(f"the database holds {committed} messages, {expected + profiled} were accepted")


def seed() -> list[str]:
    from mailboxes.models import Domain, Mailbox, Professional, Structure, TrustedDomain

    structure = Structure.objects.create(name="CH du banc", finess="750000013")
    domain = Domain.objects.create(name=DOMAIN, structure=structure)
    TrustedDomain.objects.create(name=PEER)
    responsible = Professional.objects.create(
        first_name="Banc", last_name="Essai", profession="medecin", rpps="10000000005", structure=structure
    )
    addresses = []
    for i in range(BOXES):
        box = Mailbox.objects.create(
            kind=Mailbox.Kind.ORGANISATIONAL,
            address=f"service{i}@{DOMAIN}",
            domain=domain,
            structure=structure,
            responsible=responsible,
        )
        addresses.append(box.address)
    return addresses


def count_messages() -> int:
    from django.db import connection

    from mailboxes.models import Message

    connection.close()
    return Message.objects.count()


def profile(addresses: list[str], path: str) -> int:
    """Where the time of one message goes: the delivery path alone, in this process. Returns the
    number of messages it delivered."""
    import cProfile
    import pstats

    from mailboxes.delivery import check_recipient, check_sender, send_message

    sender = f"dr.externe@{PEER}"
    batch = [make_message(addresses[i % BOXES], body_bytes=10_000) for i in range(620)]
    for raw in batch[:20]:
        send_message(raw, envelope_from=sender, envelope_to=[addresses[0]], source="smtp")

    def deliver(raws, offset=0):
        for i, raw in enumerate(raws):
            to = addresses[(i + offset) % BOXES]
            check_sender(sender)
            check_recipient(sender, to)
            send_message(raw, envelope_from=sender, envelope_to=[to], source="smtp")

    wall, cpu = time.perf_counter(), time.process_time()
    deliver(batch[20:320])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"delivery path alone (check_sender + check_recipient + send_message, one thread): "
        f"{300 / wall:,.0f} msg/s, {cpu / 300 * 1000:.1f} ms CPU and {wall / 300 * 1000:.1f} ms wall per message"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    deliver(batch[320:], 1)
    profiler.disable()
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(r"mailboxes|audit|patients|django/db/models/(query|base)|storage", 30)
    stats.sort_stats("tottime").print_stats(15)
    return len(batch)


if __name__ == "__main__":
    main()
