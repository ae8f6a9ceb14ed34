"""What a box's own settings (issue 16 item 17: sorting rules, absence message, forwarding) cost
the delivery path, on PostgreSQL, in process:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_box_settings .venv/bin/python bench/box_settings_delivery.py

Drops and re-creates the database, seeds one structure, 20 organisational boxes and a trusted
peer, then measures (one thread, tasks in process):
1. `apply_box_settings` alone — the one call the delivery path makes — for a box without any
   setting (the usual case: one query), with 10 rules none of which matches, and with a rule
   that moves and flags (rules read, then one UPDATE and one audit row);
2. `send_message` of a 10 KB message from another operator, per message, to a box without
   settings and to a box whose absence message is on (each message from a new sender: the reply
   is built and delivered, relayed rows written; the relay itself is not contacted).
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path
from smtp_ingest import DOMAIN, PEER, load, machine, make_message, seed

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, n: int) -> tuple[float, float]:
    """(median µs, p95 µs) of n calls."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_box_settings")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mssante.settings",
            "DATABASE_URL": url,
            "DEBUG": "false",
            "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "VAR_DIR": tempfile.mkdtemp(prefix="bench-box-settings-"),
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "600",
            "RELAY_HOST": "127.0.0.1",
            "RELAY_PORT": "9",  # nothing listens: the relay's attempt fails at once and is left pending
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load()}")
    recreate_database(url)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    addresses = seed()
    measure(addresses)
    print(f"load average at the end: {load()}")


def measure(addresses: list[str]) -> None:
    from django.db import transaction

    from mailboxes.box_actions import apply_box_settings
    from mailboxes.delivery import send_message
    from mailboxes.models import AbsenceMessage, BoxRule, Folder, Mailbox

    boxes = list(Mailbox.objects.filter(address__in=addresses).order_by("address"))
    plain, ruled, matching, absent = boxes[0], boxes[1], boxes[2], boxes[3]
    sender = f"dr.externe@{PEER}"
    message = send_message(
        make_message(plain.address, body_bytes=10_000), envelope_from=sender, envelope_to=[plain.address], source="smtp"
    ).message
    for i in range(10):
        BoxRule.objects.create(mailbox=ruled, position=i, field="subject", contains=f"jamais-{i}", flag=True)
    BoxRule.objects.create(
        mailbox=matching,
        field="subject",
        contains="compte rendu",
        move_to=matching.folder(Folder.Role.ARCHIVE),
        flag=True,
    )

    def hook(box):
        def call():
            with transaction.atomic():
                apply_box_settings(message, [box])
                transaction.set_rollback(True)

        return call

    def reference():
        with transaction.atomic():
            Mailbox.objects.filter(pk=plain.pk).exists()
            transaction.set_rollback(True)

    print("\n1. apply_box_settings alone (inside a transaction, rolled back)     median µs   p95 µs")
    timed(reference, 50)
    median, p95 = timed(reference, 1000)
    print(f"   {'reference: the same transaction with one trivial query':<62} {median:>9.0f} {p95:>8.0f}")
    for label, box in (
        ("box without settings", plain),
        ("10 rules, none matches", ruled),
        ("1 rule moves+flags", matching),
    ):
        timed(hook(box), 50)
        median, p95 = timed(hook(box), 1000)
        print(f"   {label:<62} {median:>9.0f} {p95:>8.0f}")

    AbsenceMessage.objects.create(mailbox=absent, enabled=True, text="Absent.")
    print("\n2. send_message, 10 KB from another operator                        median µs   p95 µs")
    for label, box in (("to a box without settings", plain), ("to a box with absence on (reply sent)", absent)):
        raws = [make_message(box.address, body_bytes=10_000) for _ in range(330)]
        senders = [f"dr.externe{i}.{box.pk}@{PEER}" for i in range(330)]
        iterator = iter(zip(raws, senders, strict=True))

        def deliver(box=box, iterator=iterator):
            raw, who = next(iterator)
            send_message(raw, envelope_from=who, envelope_to=[box.address], source="smtp")

        timed(deliver, 30)
        median, p95 = timed(deliver, 300)
        print(f"   {label:<62} {median:>9.0f} {p95:>8.0f}")
    print(f"   (domain {DOMAIN}; absence replies written: {AbsenceMessage.objects.count()} box)")


if __name__ == "__main__":
    main()
