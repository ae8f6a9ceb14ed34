"""What the access check of an open IMAP session costs (clients/auth.py `session_standing`,
asked before each command a client sends after a pause: CLIENTS_ACCESS_CHECK_SECONDS=0).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/p09 .venv/bin/python bench/imap_access_check.py

Drops and re-creates the database of DATABASE_URL, seeds the doctor of bench/imap_sync.py
with N messages (default 1,000) and an app password, then runs `manage.py runimapd` twice in
turn: with the check before every command (0), at most once a second (1, the default), and at
most once an hour (3600, i.e. once per session: what the check costs is the difference). The client is the worst case
for a per-command check: one `UID FETCH <uid> (BODY.PEEK[])` per message, each waiting for its
answer (how mbsync fetches message bodies). Rounds alternate; medians are reported, plus the
queries one check makes.
"""

import argparse
import imaplib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database, server_environment  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def environment(url: str) -> dict:
    return server_environment(url, Path(tempfile.mkdtemp(prefix="bench-access-")), drop=("CLIENTS_",))


def one_by_one(port: int, login: str, secret: str) -> float:
    """Seconds per command: each message's body fetched by its own command."""
    client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    client.login(login, secret)
    _typ, data = client.select("INBOX", readonly=True)
    count = int(data[0])
    started = time.perf_counter()
    for uid in range(1, count + 1):
        typ, _data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK"
    elapsed = time.perf_counter() - started
    client.logout()
    return elapsed / count


def queries_per_check() -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import AppPassword
    from clients import auth
    from webmail.selectors import pro_mailboxes

    user = get_user_model().objects.get(username=imap_sync.USER)
    login = auth.Login(
        user=user,
        method="app_password",
        app_password_id=AppPassword.objects.get(user=user).pk,
        primary="",
        protocol="imap",
    )
    boxes = list(pro_mailboxes(user).values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as captured:
        assert auth.session_standing(login, boxes).reason == ""
    return len(captured.captured_queries)


def main() -> None:
    global imap_sync
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    env = environment(url)
    recreate_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import imap_sync

    box, peer = imap_sync.seed()
    imap_sync.deliver_all(args.n, Path(tempfile.mkdtemp(prefix="bench-access-maildir-")), box, peer)
    print(f"queries per check: {queries_per_check()}")
    results: dict[str, list[float]] = {"0": [], "1": [], "3600": []}
    order = list(results)
    for _round in range(args.rounds):
        random.shuffle(order)  # the machine's load drifts: no setting always runs first
        for every in order:
            port = imap_sync.free_port()
            server = imap_sync.start_ours({**env, "CLIENTS_ACCESS_CHECK_SECONDS": every}, port)
            try:
                results[every].append(one_by_one(port, imap_sync.USER, imap_sync.PASSWORD))
            finally:
                server.terminate()
                server.wait(10)
    off = statistics.median(results["3600"])
    print(f"{args.n} messages, one UID FETCH BODY.PEEK[] each, {args.rounds} rounds, medians (vs once an hour):")
    for every, label in (
        ("0", "before every command"),
        ("1", "at most once a second"),
        ("3600", "at most once an hour"),
    ):
        value = statistics.median(results[every])
        rounds = " ".join(f"{r * 1000:.2f}" for r in results[every])
        print(f"  check {label:<24} {value * 1000:7.3f} ms per command ({(value / off - 1) * 100:+.1f} %)  [{rounds}]")


if __name__ == "__main__":
    main()
