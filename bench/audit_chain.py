"""Audit hash chain benchmark (issue 14): what chaining costs one delivery transaction.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_audit .venv/bin/python bench/audit_chain.py

Drops and re-creates the database, migrates, then for N transactions of 5 events each (what one
delivery to 4 boxes writes: submitted + 4 delivered) measures, in one thread and with 4 threads
at once: the time of `link()` (the chain head lock, the hashes, the head update) and of the
whole transaction (link + one INSERT of the 5 rows + COMMIT), wall and CPU of this process.
With 4 threads, the number of chains opened shows that writers did not queue on one head.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def one_transaction(timings: list) -> None:
    from django.db import transaction

    from audit.chain import link
    from audit.models import AuditEvent

    started = time.perf_counter()
    with transaction.atomic():
        # One delivery from another operator to 4 boxes: "submitted" without a sending box, then 4
        # "delivered". (5 "delivered" rows looked like a local sender's delivery, on which the
        # events_committed receivers of the API, added later, run two queries after the COMMIT.)
        rows = [AuditEvent(action="message.submitted", actor_label="smtp", message_id=1, mailbox_id=None)]
        rows += [
            AuditEvent(action="message.delivered", actor_label="smtp", message_id=1, mailbox_id=n) for n in range(1, 5)
        ]
        t0 = time.perf_counter()
        link(rows)
        t1 = time.perf_counter()
        AuditEvent.objects.bulk_create(rows)
    timings.append((t1 - t0, time.perf_counter() - started))


def run(n: int, threads: int) -> dict:
    from django.db import connection

    per_thread = n // threads
    results: list = []
    lock = threading.Lock()

    def worker():
        local: list = []
        for _ in range(per_thread):
            one_transaction(local)
        with lock:
            results.extend(local)
        connection.close()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    links = sorted(r[0] * 1000 for r in results)
    totals = sorted(r[1] * 1000 for r in results)
    return {
        "transactions": len(results),
        "per_s": len(results) / wall,
        "link_p50": statistics.median(links),
        "link_p95": links[int(len(links) * 0.95)],
        "tx_p50": statistics.median(totals),
        "cpu_ms": cpu * 1000 / len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_audit")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="mssante.settings",
        DATABASE_URL=url,
        DEBUG="false",
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        LOG_LEVEL="WARNING",
    )
    recreate_database(url)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from audit.chain import verify
    from audit.models import AuditChain

    print(f"load average {os.getloadavg()}")
    print("| threads | transactions | tx/s | link p50 ms | link p95 ms | transaction p50 ms | CPU ms/tx |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for threads in (1, 4):
        r = run(args.n, threads)
        print(
            f"| {threads} | {r['transactions']} | {r['per_s']:.0f} | {r['link_p50']:.2f} | {r['link_p95']:.2f} "
            f"| {r['tx_p50']:.2f} | {r['cpu_ms']:.2f} |"
        )
    report = verify()
    print(
        f"chains: {AuditChain.objects.count()}; verify: {'ok' if report.ok else report.first_break}; {report.events} events"
    )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
