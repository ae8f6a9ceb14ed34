"""IMAP SEARCH cost (issue 16 item 6): folded substring matching in Python against the former
`icontains` query, in process (no socket), on one folder.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_imap_search .venv/bin/python bench/imap_search.py -n 3000

Drops and re-creates the database, seeds the doctor of bench/imap_sync.py and delivers N messages
(the same generator: 90 % text of 2–12 KB, 10 % with a 60 KB PDF) through the delivery path, then
times `clients.imap.search.run` for SUBJECT, FROM, BODY and TEXT (10 rounds each, p50 / max; a word
found in most messages and one found nowhere, which reads every body to its end), and
the former query (`message__<field>__icontains`, accent-sensitive) on the same keys.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def timed(function, rounds: int = 10) -> tuple[float, float, int]:
    times, found = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        found = len(function())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_imap_search")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-imap-search-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "mssante.settings",
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()}")
    recreate_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=os.environ, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import imap_sync
    from django.db.models import Q

    from clients.imap import backend, search
    from mailboxes.models import Entry

    box, peer = imap_sync.seed()
    imap_sync.deliver_all(args.n, tmp / "Maildir", box, peer)
    folder = box.folder("inbox")
    uids = list(backend.snapshot(folder.id).uids)  # gives the entries their UIDs, as a SELECT does
    keys = {
        "SUBJECT echographie": ("SUBJECT", ("message__subject",)),
        "FROM correspondant": ("FROM", ("message__from_address", "message__from_name")),
        "BODY echographie": ("BODY", ("message__text_body",)),
        "TEXT echographie": ("TEXT", ("message__subject", "message__from_address", "message__text_body")),
        "TEXT introuvable": ("TEXT", ("message__subject", "message__from_address", "message__text_body")),
    }
    print(f"{len(uids)} entries; load average {os.getloadavg()}")
    for label, (name, columns) in keys.items():
        word = label.split()[1]
        new = timed(lambda name=name, word=word: search.run(folder.id, [search.Key(name, (word,))], uids, None))

        def old(columns=columns, word=word):
            q = Q(pk__in=[])
            for column in columns:
                q |= Q(**{f"{column}__icontains": word})
            return list(Entry.objects.filter(folder_id=folder.id, imap_uid__isnull=False).filter(q).values("imap_uid"))

        before = timed(old)
        print(
            f"{label}: folded {new[0]:.0f} ms p50 / {new[1]:.0f} ms max ({new[2]} found); "
            f"icontains {before[0]:.0f} ms p50 / {before[1]:.0f} ms max ({before[2]} found)"
        )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
