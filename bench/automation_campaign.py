"""Campaign benchmark (issue 9): N convocations from an applicative box to N distinct local
patients, end to end, through the real pages and a real Celery worker.

    flock /tmp/mss-bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_automation \
        .venv/bin/python bench/automation_campaign.py [-n 10000] [--concurrency 2]

Drops and re-creates the database of DATABASE_URL, migrates it, seeds one structure, its
organisational box and the applicative box paired with it, the standard models, and N patients
(bulk rows: patients, their boxes and folders). Then, timed from the upload:

1. the secretary's requests, in process through the Django test client (the real views):
   upload the CSV (N lines `INS;Date;Heure;Lieu`), map the columns (the check runs), start;
2. a real Celery worker (`celery worker`, prefork, `--concurrency`), started before the clock,
   on Redis DB 11, consuming only the campaign queue; each patient's notification task is
   published to the default queue, which nobody consumes here (queued is the target's end);
3. the progress page is polled once a second (the figures it shows are printed);
4. the end: the campaign is done (its last chunk committed, so its notifications published).

Prints each stage's time, messages per second, the worker's peak RSS (VmHWM of the main process
and each child), the CPU of the worker and of PostgreSQL per message, and checks that each
patient got exactly one message and has one queued notification.
"""

import argparse
import base64
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/11"  # --redis-url to use another database
QUEUE = "bench-automation"
DOMAIN = "ch-bench.mssante.fr"
APP = f"envois_automatiques_noreply@{DOMAIN}"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} CPU ({cpu}), Python {sys.version.split()[0]}"


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            pids += process_tree(int(child))
    return pids


def vm_hwm_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def cpu_seconds(pids, reaped_children: bool = False) -> float:
    """User + system CPU of `pids`; with `reaped_children`, also that of their children that
    exited (a PostgreSQL backend gone with its connection is counted by the postmaster)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if reaped_children:
            total += int(fields[13]) + int(fields[14])
    return total / ticks


def postgres_cpu_seconds() -> float:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if "(postgres" in stat.read_text():
                pids.append(int(stat.parent.name))
        except OSError:
            continue
    return cpu_seconds(pids, reaped_children=True)


def ins_for(index: int) -> str:
    from mailboxes.identifiers import ins_key

    body = f"{1 + index % 2}{50 + index % 40:02d}{1 + index % 12:02d}75{index // 1000:03d}{index % 1000:03d}"
    return f"{body}{ins_key(body):02d}"


def seed(count: int):
    """One structure, its boxes, the standard models, `count` patients with active spaces."""
    from django.contrib.auth import get_user_model

    from automation.standard_models import install_standard_models
    from mailboxes.models import Domain, Folder, Mailbox, Membership, Professional, Structure
    from patients.models import Patient

    structure = Structure.objects.create(
        name="CH du Banc", finess="380780015", address="1 rue du Banc, 38000 Grenoble", phone="04 76 00 00 01"
    )
    domain = Domain.objects.create(name=DOMAIN, structure=structure)
    responsible = Professional.objects.create(
        first_name="Rose", last_name="Banc", profession="medecin", rpps="10003456786", structure=structure
    )
    org = Mailbox.objects.create(
        kind=Mailbox.Kind.ORGANISATIONAL,
        address=f"admissions@{DOMAIN}",
        domain=domain,
        structure=structure,
        responsible=responsible,
        display_name="Admissions — CH du Banc",
    )
    app = Mailbox.objects.create(
        kind=Mailbox.Kind.APPLICATIVE,
        address=APP,
        domain=domain,
        structure=structure,
        return_mailbox=org,
        display_name="CH du Banc (envois automatiques)",
        signature="Le bureau des admissions du CH du Banc",
    )
    secretary = get_user_model().objects.create_user("secretaire", password="Bench-Mssante-2026")
    # Second factor on by default outside debug (issue 15 item 20): the secretary has one, so the
    # pages go through the middleware's real check instead of the enrolment page.
    from allauth.mfa.models import Authenticator

    Authenticator.objects.create(user=secretary, type=Authenticator.Type.TOTP, data={"secret": "bench"})
    Membership.objects.create(mailbox=app, user=secretary)
    install_standard_models(app, "Admissions", user=secretary)

    boxes = Mailbox.objects.bulk_create(
        [
            Mailbox(
                kind=Mailbox.Kind.PATIENT,
                address=f"{ins_for(i).lower()}@patient.mssante.fr",
                display_name=f"Prénom{i} NOM{i}",
                quota_bytes=2 * 1024**3,
                max_message_bytes=25 * 1024**2,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    Folder.objects.bulk_create(
        [
            Folder(mailbox=box, role=role, name=str(Folder.Role(role).label), position=position)
            for box in boxes
            for position, role in enumerate(Folder.SYSTEM_ROLES)
        ],
        batch_size=5000,
    )
    Patient.objects.bulk_create(
        [
            Patient(
                ins=ins_for(i),
                mailbox=box,
                birth_name=f"Nom{i}",
                first_names=f"Prénom{i}",
                birth_date=datetime.date(1960, 1, 1),
                sex="M" if i % 2 == 0 else "F",
                notification_email=f"patient{i}@exemple.org",
            )
            for i, box in enumerate(boxes)
        ],
        batch_size=2000,
    )
    return secretary, app


def csv_bytes(count: int) -> bytes:
    day = (datetime.date.today() + datetime.timedelta(days=20)).strftime("%d/%m/%Y")
    lines = ["INS;Date;Heure;Lieu"]
    for i in range(count):
        lines.append(f"{ins_for(i)};{day};{8 + i % 10:02d}:{(i * 5) % 60:02d};Hall B, guichet {1 + i % 6}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def start_worker(env: dict, concurrency: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - kept for the worker's life
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mssante", "worker", "-P", "prefork", "-c", str(concurrency)]
        + ["--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
        + ["-n", f"bench-automation-{os.getpid()}@localhost", "-Q", QUEUE],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(log_path.read_text(errors="replace"))
        if len(process_tree(proc.pid)) > concurrency:
            time.sleep(2)  # children forked; let them import the app
            return proc
        time.sleep(0.2)
    raise SystemExit("worker did not start")


def outcome(campaign, app, broker) -> tuple[int, ...]:
    """What the campaign left, printed: lines sent, messages, patient entries and boxes, pending
    notifications, notification ids queued in the broker."""
    from automation.models import CampaignLine
    from mailboxes.models import Entry, Message
    from patients.models import Notification

    sent = CampaignLine.objects.filter(campaign=campaign, status=CampaignLine.Status.SENT).count()
    messages = Message.objects.filter(sender_mailbox=app).count()
    inboxes = Entry.objects.filter(mailbox__kind="PAT").values("mailbox").distinct().count()
    entries = Entry.objects.filter(mailbox__kind="PAT").count()
    notifications = Notification.objects.filter(status=Notification.Status.PENDING).count()
    # A chunk's notifications are one task carrying their ids (mailboxes.queueing): count the ids.
    queued = sum(
        len(json.loads(base64.b64decode(json.loads(raw)["body"]))[0]) for raw in broker.lrange("celery", 0, -1)
    )
    print(f"status {campaign.status}; sent {sent}; messages {messages}; patient entries {entries} in {inboxes} boxes")
    tasks = broker.llen("celery")
    print(f"notifications pending {notifications}, queued in Redis {queued} (in {tasks} tasks)")
    return sent, messages, entries, inboxes, notifications, queued


def run(args, env, var_dir: Path) -> None:
    import django

    django.setup()
    import redis
    from django.test import Client
    from django.urls import reverse

    from automation.models import Campaign, CampaignLine, MessageModel

    started = time.perf_counter()
    secretary, app = seed(args.n)
    print(f"seeded {args.n} patients in {time.perf_counter() - started:.1f} s")
    model = MessageModel.objects.get(mailbox=app, kind=MessageModel.Kind.CONVOCATION)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    worker = start_worker(env, args.concurrency, var_dir / "worker.log")
    worker_pids = process_tree(worker.pid)
    client = Client()
    client.force_login(secretary)
    data = csv_bytes(args.n)
    cpu_worker0, cpu_pg0 = cpu_seconds(worker_pids), postgres_cpu_seconds()
    print(f"worker up (pids {worker_pids}); load average {load()}")

    t0 = time.perf_counter()
    wall0 = datetime.datetime.now(datetime.UTC)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("liste-du-jour.csv", data, content_type="text/csv")
    response = client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    assert response.status_code == 302, response.status_code
    campaign = Campaign.objects.get()
    t_upload = time.perf_counter()
    mapping = {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure", "lieu": "Lieu"}
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), mapping)
    valid = campaign.lines.filter(status=CampaignLine.Status.PENDING).count()
    assert valid == args.n, valid
    t_check = time.perf_counter()
    client.post(reverse("automation:campaign_control", args=[campaign.pk, "envoyer"]))
    t_start = time.perf_counter()
    print(
        f"upload {t_upload - t0:.2f} s, map + check {t_check - t_upload:.2f} s, start {t_start - t_check:.2f} s "
        f"(the secretary's three requests)"
    )
    seen = []
    while True:
        page = client.get(reverse("automation:campaign_progress", args=[campaign.pk])).content.decode()
        shown = re.search(r"(\d+) sur (\d+) messages", page)
        seen.append((round(time.perf_counter() - t0, 1), int(shown.group(1))))
        campaign.refresh_from_db()
        if campaign.status == Campaign.Status.DONE or time.perf_counter() - t0 > args.timeout:
            break
        time.sleep(1)
    campaign.refresh_from_db()
    total = (campaign.finished_at - wall0).total_seconds() if campaign.finished_at else float("nan")
    cpu_worker = cpu_seconds(worker_pids) - cpu_worker0
    cpu_pg = postgres_cpu_seconds() - cpu_pg0
    peaks = {pid: vm_hwm_mb(pid) for pid in worker_pids}
    print("progress seen on the page (s, messages):", ", ".join(f"{s}:{n}" for s, n in seen))
    sent, messages, entries, inboxes, notifications, queued = outcome(campaign, app, broker)
    print(f"END TO END (upload → last message committed, its notification queued): {total:.1f} s")
    print(
        f"sending (start → done): {total - (t_start - t0):.1f} s = {sent / max(total - (t_start - t0), 1e-9):.0f} msg/s"
    )
    print(f"worker peak RSS (VmHWM) by process, MB: {', '.join(f'{p}: {m:.0f}' for p, m in peaks.items())}")
    print(
        f"CPU per message: worker {1000 * cpu_worker / max(sent, 1):.2f} ms, PostgreSQL {1000 * cpu_pg / max(sent, 1):.2f} ms"
    )
    print(f"load average at the end {load()}")
    ok = sent == messages == entries == inboxes == notifications == queued == args.n
    worker.terminate()
    worker.wait(timeout=30)
    broker.flushdb()
    if not ok:
        print((var_dir / "worker.log").read_text(errors="replace")[-4000:])
        raise SystemExit("FAILED: every patient did not get exactly one message and one queued notification")


SHARES = [
    ("mailboxes.delivery.send_message (whole delivery path)", "delivery/send.py", "send_message"),
    ("  of which the patient policy (checks, conversation, notification)", "policy.py", "after_delivery"),
    ("  of which the patient policy: recipient decision", "policy.py", "decide_recipient"),
    ("mailboxes.compose.build_message (MIME)", "compose.py", "build_message"),
    ("automation.calendar.build_ics (icalendar)", "calendar.py", "build_ics"),
    ("automation.sending.compose (fields)", "sending.py", "compose"),
]


def profile(args) -> None:
    """CPU per message and its split, in process: the same chunks the worker runs."""
    import cProfile
    import pstats

    import django

    django.setup()
    from automation import campaign_sending, campaigns
    from automation.models import Campaign, MessageModel

    secretary, app = seed(args.n)
    model = MessageModel.objects.get(mailbox=app, kind=MessageModel.Kind.CONVOCATION)
    campaign = campaigns.create_campaign(model, filename="l.csv", data=csv_bytes(args.n), user=secretary)
    campaigns.apply_mapping(
        campaign, {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure", "lieu": "Lieu"}, secretary
    )
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)
    campaign_sending.process_batch(campaign.pk, max_lines=50)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    campaign_sending.process_batch(campaign.pk, max_lines=args.profile)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"unprofiled: {args.profile} messages, {1000 * cpu / args.profile:.2f} ms CPU and {1000 * wall / args.profile:.2f} ms wall each"
    )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        campaign_sending.process_batch(campaign.pk, max_lines=50)
    kinds = collections.Counter(q["sql"].split(None, 1)[0].upper() for q in queries.captured_queries)
    print(f"statements for a chunk of 50: {len(queries)} ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})")
    if os.environ.get("BENCH_SHOW_SQL"):
        for query in queries.captured_queries[:40]:
            print("   ", query["sql"][:160])
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    campaign_sending.process_batch(campaign.pk, max_lines=args.profile)
    profiler.disable()
    if args.profile_file:
        profiler.dump_stats(args.profile_file)
    stats = pstats.Stats(profiler)
    total = sum(row[3] for key, row in stats.stats.items() if key[2] == "process_batch")
    print(f"profiled split of the CPU (total {total:.2f} s):")
    for label, filename, function in SHARES:
        spent = sum(row[3] for key, row in stats.stats.items() if key[0].endswith(filename) and key[2] == function)
        print(f"  {100 * spent / total:5.1f} %  {label}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # the notification tasks published meanwhile


def main() -> None:
    global REDIS_URL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--chunk", type=int, default=50, help="AUTOMATION_CAMPAIGN_CHUNK")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--redis-url", default=REDIS_URL, help="broker (flushed at the start and the end)")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="instead: send N lines in process (no worker) under a CPU-time cProfile and print where it goes",
    )
    parser.add_argument("--profile-file", metavar="PATH", help="with --profile: also write the cProfile stats there")
    args = parser.parse_args()
    REDIS_URL = args.redis_url
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_automation")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    var_dir = Path(tempfile.mkdtemp(prefix="bench-automation-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "CELERY_", "RELAY_", "EMAIL_"))},
        "DJANGO_SETTINGS_MODULE": "mssante.settings",
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "VAR_DIR": str(var_dir),
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "600",
        "CELERY_BROKER_URL": REDIS_URL,
        "AUTOMATION_QUEUE": QUEUE,
        "AUTOMATION_CAMPAIGN_PARALLEL": str(args.concurrency),
        "AUTOMATION_CAMPAIGN_CHUNK": str(args.chunk),
        "EMAIL_FILE_PATH": str(var_dir / "mail"),
    }
    os.environ.update(env)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load()}")
    recreate_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    try:
        profile(args) if args.profile else run(args, env, var_dir)
    finally:
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
