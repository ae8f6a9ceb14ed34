"""Issue 17, group commit: what k deliveries in ONE transaction save against one each (in process).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_i17k .venv/bin/python bench/group_commit_probe.py

Drops and re-creates the database of DATABASE_URL, seeds the boxes of bench/smtp_ingest.py,
then delivers 10 KB messages through the gateway's own call (`smtp_gateway.deliver_inbound`,
one thread, no SMTP) in sets of `-n` messages, modes alternated `--rounds` times:

- `1`: one message per transaction (today's gateway);
- `k sp`: k messages inside one `transaction.atomic()` (each delivery then takes a savepoint);
- `k block`: k messages inside `many_in_one_transaction(..., savepoint_per_message=False)`
  (no savepoint, one wait for the files' fsync): the lower bound of sharing the commit.

(Before each group the trusted domains' cache is refreshed outside the transaction: it is filled
outside transactions only, and a group commit would plan each message before the shared
transaction, as the gateway does today.)

And the fixed cost of one round trip (`SELECT 1`, and `reserve_ids` of one delivery), what sharing
the ids' reservation or the statement between k messages could save at most per message.
Per mode: this process's CPU (all threads: the fsync pool included), its PostgreSQL backend's CPU
(/proc/<pg_backend_pid()>/stat, same machine), all PostgreSQL processes' CPU (WAL writer…; other
users of the cluster included) and the wall time, per message.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path
from smtp_ingest import BOXES, PEER, ROOT, bench_env, load, machine, make_message, postgres_cpu_seconds, seed

TICKS = os.sysconf("SC_CLK_TCK")
SENDER = f"dr.externe@{PEER}"
TRACE = (
    f"Return-Path: <{SENDER}>\r\nReceived: from mx.{PEER} ([127.0.0.1])\r\n\tby mx.bench (MSSante) with ESMTP "
    "id 0123456789abcdef\r\n\tfor <x@y>; Tue, 01 Dec 2026 06:00:00 +0000\r\n"
).encode()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Meter:
    def __init__(self, backend: int) -> None:
        self.backend = backend

    def __enter__(self):
        self.t = (time.perf_counter(), time.process_time(), proc_cpu(self.backend), postgres_cpu_seconds())
        return self

    def __exit__(self, *exc) -> None:
        now = (time.perf_counter(), time.process_time(), proc_cpu(self.backend), postgres_cpu_seconds())
        self.wall, self.client, self.backend_cpu, self.pg = (b - a for a, b in zip(self.t, now, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=400, help="messages per set")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--quiet", action="store_true", help="no line per set (many short sets: -n 40 --rounds 40)")
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    var_dir = Path(tempfile.mkdtemp(prefix="i17k-probe-"))
    env = bench_env(url, var_dir)
    os.environ.update(env)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load {load()}")
    try:
        recreate_database(url)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        run(args, seed())
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def run(args, addresses: list[str]) -> None:
    """Warm up, alternate the modes for `args.rounds` rounds, print the comparisons, then the
    fixed costs of one round trip and of one delivery's id reservation."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    deliver, messages = delivery_modes(addresses)
    deliver("1", messages(100))
    deliver("2 sp", messages(50))
    deliver("2 block", messages(50))
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = ["1"] + [f"{k} {kind}" for k in sizes if k > 1 for kind in ("sp", "block")]
    results = measure_rounds(args, modes, deliver, messages, backend)
    print_medians(modes, results)
    print_means(modes, results, args.rounds // 2)
    print_fixed_costs(backend)
    print(f"\nload at the end {load()}")


def delivery_modes(addresses: list[str]):
    """(deliver(mode, batch), messages(n)): "1" is one transaction per message (the gateway
    today), "k sp" k per transaction with a savepoint each, "k block" k per transaction with no
    savepoint, one fsync wait and one commit."""
    from django.db import transaction

    from mailboxes.delivery import many_in_one_transaction
    from mailboxes.models import Mailbox
    from mailboxes.smtp_gateway import deliver_inbound
    from mailboxes.trust import cached_domain_sets

    # The block's "sending box": inbound mail has none, so it never counts a SENT copy here.
    any_box = Mailbox.objects.get(address=addresses[0])
    counter = iter(range(10**9))

    def messages(n):
        return [(addresses[next(counter) % BOXES], make_message(addresses[0], body_bytes=10_000)) for _ in range(n)]

    def one(to, raw):
        deliver_inbound(raw, SENDER, [to], TRACE)

    def deliver(mode: str, batch):
        k = int(mode.split()[0])
        for start in range(0, len(batch), k):
            group = batch[start : start + k]
            # The trusted domains' cache is filled outside transactions only: a group commit
            # would accept (plan) each message before the shared transaction, as today.
            cached_domain_sets()
            if k == 1:
                one(*group[0])
            elif mode.endswith("sp"):
                with transaction.atomic():
                    for item in group:
                        one(*item)
            else:
                with transaction.atomic(), many_in_one_transaction(any_box, savepoint_per_message=False):
                    for item in group:
                        one(*item)

    return deliver, messages


def measure_rounds(args, modes, deliver, messages, backend) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per mode, per round: client CPU, backend CPU, all PostgreSQL CPU, wall (ms per message);
    the modes' order is reversed every other round."""
    results: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in modes}
    for round_no in range(args.rounds):
        order = modes if round_no % 2 == 0 else list(reversed(modes))
        for mode in order:
            batch = messages(args.n)
            with Meter(backend) as m:
                deliver(mode, batch)
            per = tuple(x / args.n * 1000 for x in (m.client, m.backend_cpu, m.pg, m.wall))
            results[mode].append(per)
            if not args.quiet:
                print(
                    f"round {round_no + 1} {mode:8s} client {per[0]:.2f} backend {per[1]:.2f} all-pg {per[2]:.2f} "
                    f"wall {per[3]:.2f} ms/msg (load {load()})",
                    flush=True,
                )
    return results


def print_medians(modes, results) -> None:
    print("\nmedians (ms per message): client CPU / backend CPU / all PostgreSQL CPU / wall; then client +")
    print("backend CPU, and the median over rounds of (this mode - mode 1 of the same round) of client + backend")
    base = [statistics.median(r[i] for r in results["1"]) for i in range(4)]
    for mode in modes:
        med = [statistics.median(r[i] for r in results[mode]) for i in range(4)]
        paired = statistics.median(
            (r[0] + r[1]) - (b[0] + b[1]) for r, b in zip(results[mode], results["1"], strict=True)
        )
        print(
            f"{mode:8s} {med[0]:.2f} / {med[1]:.2f} / {med[2]:.2f} / {med[3]:.2f}   client+backend "
            f"{med[0] + med[1]:.2f} ms, paired {paired:+.2f} ms ({paired / (base[0] + base[1]) * 100:+.1f} %)"
        )


def print_means(modes, results, half: int) -> None:
    print("means over all sets (ms per message): client + backend CPU, and each half of the sets apart")
    base_sums = [r[0] + r[1] for r in results["1"]]
    for mode in modes:
        sums = [r[0] + r[1] for r in results[mode]]
        ratios = [
            statistics.mean(part) / statistics.mean(base_part) - 1
            for part, base_part in ((sums, base_sums), (sums[:half], base_sums[:half]), (sums[half:], base_sums[half:]))
        ]
        print(
            f"{mode:8s} {statistics.mean(sums):.2f} ms: {ratios[0] * 100:+.1f} % against mode 1 "
            f"(first half {ratios[1] * 100:+.1f} %, second half {ratios[2] * 100:+.1f} %)"
        )


def print_fixed_costs(backend) -> None:
    """The fixed cost of a round trip, and of one delivery's id reservation (1, 2, 4 at once)."""
    from django.db import connection, transaction

    from audit import chain
    from mailboxes.delivery import statement
    from mailboxes.models import Delivery, Message, Outbox

    day = chain.current_day()
    n = 2000
    with Meter(backend) as m, transaction.atomic(), connection.cursor() as cursor:
        for _ in range(n):
            cursor.execute("SELECT 1")
            cursor.fetchone()
    print(f"\nSELECT 1: client {m.client / n * 1e6:.0f} µs, backend {m.backend_cpu / n * 1e6:.0f} µs per round trip")
    for k in (1, 2, 4):
        with Meter(backend) as m, transaction.atomic():
            for _ in range(n // k):
                statement.reserve_ids(Message, k, (Delivery, k), (Outbox, 0), also=[chain.free_head_value(day)])
        print(
            f"reserve_ids for {k} deliveries: client {m.client / n * 1e6:.0f} µs, backend "
            f"{m.backend_cpu / n * 1e6:.0f} µs per delivery"
        )


if __name__ == "__main__":
    main()
