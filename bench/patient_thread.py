"""Patient thread page benchmark (issue 16 item 7): time to serve `/patient/echange/<entry>/`,
the whole exchange with one professional on one page, for threads of 5, 25 and 100 messages
(one attachment every fifth message, the patient's reply every third), beside the inbox.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_i16 flock /tmp/mss-bench.lock \
        .venv/bin/python bench/patient_thread.py

Drops and re-creates the database named in DATABASE_URL, migrates it, builds the threads through
the one delivery path (`send_from_mailbox`), then in one warm process (one untimed visit first:
it marks everything read) takes the median of `-n` interleaved GETs per page through Django's
test client (the whole request: middleware, session, views, templates, the read audit events),
and counts the queries of one visit.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SIZES = (5, 25, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="timed visits per page (median)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (it is dropped and re-created).")
    recreate_database(url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mssante.settings",
            "DEBUG": "true",
            "VAR_DIR": tempfile.mkdtemp(prefix="bench-thread-"),
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "",
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["*"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # notifications stay quiet
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    call_command("migrate", verbosity=0)

    from mailboxes.compose import send_from_mailbox
    from mailboxes.models import Entry, Folder
    from tests.factories import (
        DomainFactory,
        ProfessionalFactory,
        StructureFactory,
        UserFactory,
        make_patient,
        nominative_mailbox,
    )

    structure = StructureFactory(name="Centre hospitalier des Trois Pics")
    domain = DomainFactory(name="ch-troispics.mssante.fr", structure=structure)
    patient = make_patient("Paul", "Lambert", sex="1")
    pages = {"inbox": "/patient/"}
    for size in SIZES:
        pro = ProfessionalFactory(
            user=UserFactory(username=f"pro{size}"), first_name="Alice", last_name=f"Martin{size}", structure=structure
        )
        box = nominative_mailbox(pro, domain)
        first = None
        for index in range(size):
            if index % 3 == 2 and first is not None:
                send_from_mailbox(
                    patient.mailbox,
                    patient.user,
                    to=[box.address],
                    subject="RE : suivi",
                    text="Merci.\n" * 5,
                    in_reply_to=first,
                    source="patient",
                )
                continue
            attachments = [(f"compte-rendu-{index}.pdf", "application/pdf", PDF)] if index % 5 == 0 else []
            sent = send_from_mailbox(
                box,
                pro.user,
                to=[patient.address],
                subject=f"Suivi {index}",
                text="Bonjour,\nsuite de votre suivi.\n" * 8,
                attachments=attachments,
            ).message
            first = first or sent
        entry = Entry.objects.get(mailbox=patient.mailbox, folder__role=Folder.Role.INBOX, message=first)
        pages[f"thread of {size}"] = f"/patient/echange/{entry.pk}/"

    client = Client()
    client.force_login(patient.user)
    queries = {}
    for name, path in pages.items():
        assert client.get(path).status_code == 200, path  # warm, marks read
        with CaptureQueriesContext(connection) as captured:
            client.get(path)
        queries[name] = len(captured.captured_queries)
    wall = {name: [] for name in pages}
    for _ in range(args.n):
        for name, path in pages.items():
            start = time.perf_counter()
            client.get(path)
            wall[name].append((time.perf_counter() - start) * 1000)
    load = os.getloadavg()
    print(f"# Patient thread page — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {os.cpu_count()} CPU, PostgreSQL, {args.n} interleaved rounds, load average {load[0]:.2f}\n")
    print("| page | median ms | p90 ms | queries |")
    print("| --- | ---: | ---: | ---: |")
    for name in pages:
        ordered = sorted(wall[name])
        p90 = ordered[int(len(ordered) * 0.9) - 1]
        print(f"| {name} | {statistics.median(ordered):.1f} | {p90:.1f} | {queries[name]} |")


if __name__ == "__main__":
    main()
