"""Webmail benchmark (issue 6): the message list, a deep page, opening a message and a search on
a box of 100,000 messages, on PostgreSQL, beside a bare "floor" view.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/webmail .venv/bin/python bench/webmail_bench.py

Drops and re-creates the database named in DATABASE_URL, migrates it and seeds one nominative
box with N messages (default 100,000; 20 % with an attachment, 5 % unread, threads of 1–3) by
COPY, with the full-text indexes rebuilt after the load. Then:

1. in process (Django test client, logged in): p50/p95 server time of the list's first page,
   a deep page (keyset cursor after 60 % of the box), opening a message and searches; the SQL
   queries of a page with 50 rows and of a page with 5 rows (they must be equal);
2. under a steady load: gunicorn sync workers (`--workers`, default 4) and `wrk` with 8
   connections and a logged-in session cookie, for the list's first page and for the floor, a
   bare Django view rendering the same 50 rows from one indexed query with a plain template
   (bench/webmail_floor.py, mounted by the bench-only bench/webmail_urls.py). Alternated
   rounds each (`--rounds`, default 3; the median is kept); requests/s and wrk's latency
   percentiles of the last round.

Targets: list throughput ≥ 2/3 of the floor's; search p95 ≤ 100 ms. Options: `-n`, `--duration`
(seconds per wrk round, default 15), `--workers`, `--iterations` (in-process samples, default 60).
"""

import argparse
import datetime
import hashlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import free_port, recreate_database, start_gunicorn  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.webmail_settings"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/webmail")

DOMAIN = "ch-bench.mssante.fr"
KINDS = [
    "Compte rendu de consultation",
    "Résultats de biologie",
    "Compte rendu d'échographie cardiaque",
    "Lettre de sortie",
    "Ordonnance de sortie",
    "Convocation en hôpital de jour",
    "Demande d'avis",
    "Compte rendu opératoire",
    "Imagerie : scanner thoracique",
    "Planning des séances de rééducation",
]
LAST = [
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefebvre",
    "Leroy",
    "Roux",
    "David",
    "Bertrand",
    "Morel",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Muller",
    "Lefevre",
    "Faure",
    "Andre",
]
FIRST = ["Jean", "Marie", "Pierre", "Anne", "Louis", "Claire", "Paul", "Sophie", "Michel", "Julie"]
SENTENCES = [
    "Je vous adresse ce patient pour avis spécialisé.",
    "L'examen clinique est sans particularité notable.",
    "La tension artérielle est de {a}/{b} mmHg au repos.",
    "Le bilan biologique retrouve une créatinine à {a} µmol/L.",
    "Nous proposons une surveillance à {b} jours.",
    "Le traitement par bêtabloquant est poursuivi sans modification.",
    "L'échographie montre une fraction d'éjection conservée.",
    "Merci de convoquer le patient à jeun pour la prise de sang.",
    "Pas d'allergie médicamenteuse connue.",
    "Le scanner ne met pas en évidence d'embolie pulmonaire.",
    "Une kinésithérapie respiratoire est prescrite.",
    "Le patient sera revu en consultation dans {b} semaines.",
]
RARE = "hyperkaliémie sévère à surveiller de près."


def seed(n: int, rng: random.Random):
    """One professional's box of `n` messages, loaded by COPY; its search indexes rebuilt after."""
    from django.db import connection
    from django.utils import timezone

    user, box, inbox, archive = _owner()
    digest, raw_name = _shared_raw_file()
    webmail_indexes = _drop_webmail_indexes()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM mailboxes_message")
        first_id = cursor.fetchone()[0] + 1
    start = timezone.now() - datetime.timedelta(days=n // 100 + 1)  # a message a minute since
    began = time.perf_counter()
    with connection.connection.cursor() as cur:  # the psycopg connection under Django's
        _copy_messages(cur, n, rng, first_id, start, box.address, digest, raw_name)
        _copy_attachments(cur, n, first_id, digest, raw_name)
        _copy_entries(cur, n, rng, first_id, start, box.pk, inbox.pk, archive.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('mailboxes_message', 'id'), %s)", [first_id + n])
        loaded = time.perf_counter() - began
        for _name, definition in webmail_indexes:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE")
    indexed = time.perf_counter() - began - loaded
    return user, box, inbox, archive, loaded, indexed


def _owner():
    """Dr Jeanne BANC, her second factor and her nominative box (its inbox and archive)."""
    from allauth.mfa.models import Authenticator
    from django.contrib.auth import get_user_model

    from mailboxes.models import Domain, Folder, Mailbox, Professional, Structure
    from tests.factories import make_finess, make_rpps

    structure = Structure.objects.create(name="CH du Banc d'essai", finess=make_finess(77))
    domain = Domain.objects.create(name=DOMAIN, structure=structure)
    user = get_user_model().objects.create_user(
        "bench", password="bench-password-42", first_name="Jeanne", last_name="Banc"
    )
    pro = Professional.objects.create(
        user=user, first_name="Jeanne", last_name="Banc", profession="medecin", rpps=make_rpps(77), structure=structure
    )
    # A second factor enrolled, as production requires (MFA_REQUIRED_FOR_PROFESSIONALS): pages are
    # measured through the middleware's real check, not a redirect to the enrolment page.
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": "bench"})
    box = Mailbox.objects.create(
        kind=Mailbox.Kind.NOMINATIVE,
        address=f"jeanne.banc@{DOMAIN}",
        domain=domain,
        structure=structure,
        owner=pro,
        display_name="Dr Jeanne BANC",
    )
    return user, box, box.folder(Folder.Role.INBOX), box.folder(Folder.Role.ARCHIVE)


def _shared_raw_file():
    """One small raw file every seeded message points to (the bench reads bodies from rows)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    raw = b"From: bench@ch-bench.mssante.fr\r\nSubject: bench\r\n\r\nbench\r\n"
    digest = hashlib.sha256(raw).hexdigest()
    raw_name = f"raw/{digest[:2]}/{digest}.eml"
    if not default_storage.exists(raw_name):
        default_storage.save(raw_name, ContentFile(raw))
    return digest, raw_name


def _drop_webmail_indexes():
    """Drop the webmail's own indexes before the COPY; returns their definitions to rebuild."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'webmail_%%' AND indexname NOT LIKE '%%_pkey'"
            # Indexes behind a constraint (the address books' unique keys) stay.
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        webmail_indexes = cursor.fetchall()
        for name, _definition in webmail_indexes:
            cursor.execute(f"DROP INDEX {name}")
    return webmail_indexes


def _copy_messages(cur, n, rng, first_id, start, address, digest, raw_name):
    from django.utils import timezone

    senders = [
        (f"{f.lower()}.{ln.lower()}@clinique-{i % 7}.mssante.fr", f"Dr {f} {ln.upper()}")
        for i, (f, ln) in enumerate(zip(FIRST * 3, LAST, strict=False))
    ]
    now = timezone.now()
    thread_key = ""
    sql, more = _copy_sql(
        cur,
        "mailboxes_message",
        "id message_id in_reply_to references thread_key from_address from_name to cc envelope_from "
        "envelope_to subject date text_body html_body mdn_requested_to x_mss_headers auto_submitted is_report "
        "has_attachments size sha256 raw created_at".split(),
    )
    with cur.copy(sql) as copy:
        for i in range(n):
            mid = f"<bench-{i}@{DOMAIN}>"
            if i == 0 or rng.random() < 0.6:
                thread_key = mid
            sender, sender_name = senders[i % len(senders)]
            patient = f"{rng.choice(FIRST)} {rng.choice(LAST).upper()}"
            subject = f"{rng.choice(KINDS)} — {patient}"
            body = " ".join(
                rng.choice(SENTENCES).format(a=rng.randint(60, 180), b=rng.randint(2, 30)) for _ in range(5)
            )
            if i % 500 == 7:
                body += " " + RARE
            copy.write_row(
                (
                    first_id + i,
                    mid,
                    "",
                    "",
                    thread_key,
                    sender,
                    sender_name,
                    f'[{{"address": "{address}", "name": ""}}]',
                    "[]",
                    sender,
                    f'["{address}"]',
                    subject,
                    start + datetime.timedelta(seconds=60 * i),
                    f"Bonjour,\n{body}\nCordialement.",
                    "",
                    "",
                    "{}",
                    False,
                    False,
                    i % 5 == 0,
                    2000,
                    digest,
                    raw_name,
                    now,
                    *more,
                )
            )


def _copy_attachments(cur, n, first_id, digest, raw_name):
    sql, more = _copy_sql(
        cur,
        "mailboxes_attachment",
        "message_id filename content_type size sha256 file content_id is_inline position".split(),
    )
    with cur.copy(sql) as copy:
        for i in range(0, n, 5):
            row = (first_id + i, f"compte-rendu-{i}.pdf", "application/pdf", 120_000, digest, raw_name, "", False, 0)
            copy.write_row((*row, *more))


def _copy_entries(cur, n, rng, first_id, start, box_id, inbox_id, archive_id):
    sql, more = _copy_sql(
        cur,
        "mailboxes_entry",
        "mailbox_id message_id folder_id received_at seen flagged answered forwarded is_draft".split(),
    )
    with cur.copy(sql) as copy:
        for i in range(n):
            folder = archive_id if i < 5 else inbox_id  # 5 archived: a page of 5 rows
            received = start + datetime.timedelta(seconds=60 * i)
            row = (box_id, first_id + i, folder, received, rng.random() > 0.05, i % 37 == 0, False, False, False)
            copy.write_row((*row, *more))


def _copy_sql(cursor, table: str, columns: list[str]):
    """COPY statement for `columns`, plus every other NOT NULL column without a default that
    other issues may add to the table (filled with an empty value of its type)."""
    cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL AND column_name <> 'id'",
        [table],
    )
    empty = {"boolean": False, "integer": 0, "bigint": 0, "smallint": 0, "jsonb": "{}"}
    extra = [(name, empty.get(kind, "")) for name, kind in cursor.fetchall() if name not in columns]
    names = ", ".join(f'"{c}"' for c in [*columns, *(name for name, _ in extra)])
    return f"COPY {table} ({names}) FROM STDIN", tuple(value for _, value in extra)


def percentiles(samples):
    ordered = sorted(samples)
    return statistics.median(ordered), statistics.quantiles(ordered, n=20)[18]


def timed(client, urls, iterations):
    samples = []
    for i in range(iterations):
        url = urls[i % len(urls)]
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return percentiles(samples)


def queries(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


PANE_HEADERS = ("HX-Request: true", "HX-Target: list-pane")


def wrk(url, cookie, duration, headers=()):
    extra = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{duration}s", "--latency", "-H", f"Cookie: {cookie}", *extra, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": lat.get("50"),
        "p90": lat.get("90"),
        "p99": lat.get("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    if not url.startswith("postgres"):
        sys.exit("This benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    recreate_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    rng = random.Random(6)
    user, box, inbox, archive, loaded, indexed = seed(args.n, rng)
    print(f"seeded {args.n} messages: COPY {loaded:.1f} s, indexes {indexed:.1f} s")

    client, urls = _logged_in(user, box, inbox, args)
    rows, search_p95 = _in_process(client, user, urls, args.iterations)
    counts = {
        "list page of 50 rows": queries(client, urls["list"]),
        "of 5 rows": queries(client, f"/pro/bal/{box.pk}/dossier/{archive.pk}/"),
        "deep page": queries(client, urls["deep"]),
        "search": queries(client, urls["searches"]["name (≈3 %)"]),
        "new-mail poll": queries(client, urls["poll"]),
    }
    load = _under_load(client, urls, inbox, args)
    _report(rows, counts, load, search_p95, args)


def _logged_in(user, box, inbox, args):
    """A logged-in test client and the URLs measured: the list, a deep page, messages to open,
    the searches (POSTed once, as the page does: their terms never travel in URLs, issue 15
    item 10) and the new-mail poll."""
    from django.test import Client

    from mailboxes.models import Entry
    from webmail.selectors import encode_cursor

    client = Client()
    client.force_login(user)
    list_url = f"/pro/bal/{box.pk}/dossier/{inbox.pk}/"
    ordered = Entry.objects.filter(folder=inbox).order_by("-received_at", "-id")
    deep = ordered[int(args.n * 0.6)]
    open_ids = list(ordered.values_list("id", flat=True)[1000 : 1000 + args.iterations])
    search_base = f"/pro/bal/{box.pk}/recherche/"
    search_forms = {
        "rare word (0.2 %)": {"q": "hyperkaliémie"},
        "name (≈3 %)": {"q": "Lefebvre"},
        "phrase (≈10 %)": {"q": '"scanner thoracique"'},
        "common word (≈40 %)": {"q": "échographie"},
        "attachment name": {"q": "compte-rendu-4805"},
        "word + unread + attachments": {"q": "ordonnance", "unread": "on", "attachments": "on"},
    }
    urls = {
        "list": list_url,
        "deep": f"{list_url}?apres={encode_cursor(deep)}",
        "open": [f"/pro/message/{pk}/" for pk in open_ids],
        "searches": {name: client.post(search_base, form)["Location"] for name, form in search_forms.items()},
        # What every open page asks each WEBMAIL_POLL_SECONDS (issue 16 item 15).
        "poll": f"{list_url}nouveautes/",
        "floor": f"/bench/floor/{inbox.pk}/",
    }
    for url_ in [urls["list"], urls["deep"], urls["open"][0], urls["poll"], *urls["searches"].values()]:
        client.get(url_)  # warm
    return client, urls


def _in_process(client, user, urls, iterations):
    from django.test import Client

    rows = [("list, first page (full page)", *timed(client, [urls["list"]], iterations))]
    pane = Client(HTTP_HX_REQUEST="true", HTTP_HX_TARGET="list-pane")
    pane.force_login(user)
    rows.append(("list, first page (list pane, htmx)", *timed(pane, [urls["list"]], iterations)))
    rows.append(("floor (bare view, same 50 rows)", *timed(client, [urls["floor"]], iterations)))
    rows.append(("list, deep page (60 %)", *timed(client, [urls["deep"]], iterations)))
    rows.append(("open a message", *timed(client, urls["open"], iterations)))
    rows.append(("new-mail poll (counts + newest)", *timed(client, [urls["poll"]], iterations)))
    search_p95 = []
    for name, url_ in urls["searches"].items():
        p50, p95 = timed(client, [url_], iterations)
        search_p95.append(p95)
        rows.append((f"search: {name}", p50, p95))
    return rows, search_p95


def _under_load(client, urls, inbox, args):
    """gunicorn sync workers and wrk (8 connections, the session's cookie): the floor, the list
    pane and the full page, in alternated rounds."""
    from django.conf import settings

    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.webmail_settings"}
    server = start_gunicorn("webmail", port, args.workers, env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        targets = {
            "floor": (f"{base}{urls['floor']}", ()),
            "webmail list pane (htmx, paging)": (f"{base}{urls['list']}", PANE_HEADERS),
            "webmail full page (three panes)": (f"{base}{urls['list']}", ()),
        }
        for name, (target, headers) in targets.items():
            request = urllib.request.Request(target, headers={"Cookie": cookie, **dict(h.split(": ") for h in headers)})
            with urllib.request.urlopen(request, timeout=10) as response:  # raises on a 4xx/5xx
                assert response.status == 200 and not response.geturl().endswith("/login/"), name
            wrk(target, cookie, 3, headers)  # warm every worker
        load = {name: [] for name in targets}
        for _round in range(args.rounds):
            for name, (target, headers) in targets.items():
                load[name].append(wrk(target, cookie, args.duration, headers))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return load


def _report(rows, counts, load, search_p95, args):
    print()
    print(f"| measure (in process, {args.iterations} samples) | p50 ms | p95 ms |")
    print("| --- | ---: | ---: |")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    print()
    print("SQL queries per request: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    print()
    print(
        f"| under load (wrk -t2 -c8, {args.duration} s × {args.rounds} alternated rounds, median; "
        f"gunicorn sync × {args.workers}) | req/s | p50 | p90 | p99 | non-2xx |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    summary = {}
    for name, runs in load.items():
        rps = statistics.median(r["rps"] for r in runs)
        summary[name] = rps
        last = runs[-1]
        errors = sum(r["errors"] for r in runs)
        print(f"| {name} | {rps:.0f} | {last['p50']} | {last['p90']} | {last['p99']} | {errors} |")
        if errors:
            print(f"WARNING: {errors} non-2xx answers for {name}: its figures are not valid")
    print()
    for name in ("webmail list pane (htmx, paging)", "webmail full page (three panes)"):
        ratio = summary[name] / summary["floor"]
        print(f"{name} / floor throughput: {ratio:.2f} (target ≥ 0.67) — {'met' if ratio >= 2 / 3 else 'MISSED'}")
    worst = max(search_p95)
    print(f"worst search p95: {worst:.1f} ms (target ≤ 100 ms) — {'met' if worst <= 100 else 'MISSED'}")


if __name__ == "__main__":
    main()
