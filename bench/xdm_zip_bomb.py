"""An IHE_XDM.zip zip bomb in the composer (issue 15 item 16), on PostgreSQL, in process:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_xdm .venv/bin/python bench/xdm_zip_bomb.py

Drops and re-creates the database, seeds one structure and 20 organisational boxes, builds (once,
cached in the temporary folder) a 4 MB `IHE_XDM.zip` of 200 members of 20 MB each (XML that
compresses a thousandfold), and a normal archive of two small CDA documents. Then times, on the
webmail's own functions (the view around them adds a few milliseconds):
1. a draft autosave with the archive attached (`ComposeForm(draft=True)` + `drafts.save_draft`);
2. a send with it (`compose.encoded_size`, as the composer checks the size, then
   `compose.send_from_mailbox`);
3. `cda.cda_facts` alone on the bomb and on the normal archive.
"""

import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path
from smtp_ingest import DOMAIN, load, machine, seed

ROOT = Path(__file__).resolve().parents[1]
MEMBERS, MEMBER_BYTES = 200, 20 * 1024 * 1024 - 4096
CDA = (
    '<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
    '<code code="{code}" codeSystem="2.16.840.1.113883.6.1"/>'
    '<recordTarget><patientRole><id root="1.2.250.1.213.1.4.8" extension="279035121518989"/>'
    "</patientRole></recordTarget>{padding}</ClinicalDocument>"
)


def bomb(folder: Path) -> bytes:
    path = folder / "IHE_XDM-bomb.zip"
    if not path.exists():
        head, tail = CDA.split("{padding}")
        member = head.format(code="11488-4").encode() + b" " * (MEMBER_BYTES - 400) + tail.encode()
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for i in range(MEMBERS):
                archive.writestr(f"IHE_XDM/SUBSET01/DOC{i:04d}.XML", member)
    return path.read_bytes()


def normal() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i, code in enumerate(("11488-4", "34133-9")):
            archive.writestr(f"IHE_XDM/SUBSET01/DOC{i:04d}.XML", CDA.format(code=code, padding=" " * 20000))
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", "<x/>")
    return buffer.getvalue()


def facts_or_refusal(cda, data: bytes):
    try:
        return cda.cda_facts(data)
    except ValueError as exc:  # ArchiveTooLarge after the fix
        return exc


def timed(fn, n: int) -> tuple[float, float]:
    """(median s, max s) of n calls."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples)


def main() -> None:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_xdm")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    folder = Path(tempfile.gettempdir()) / "bench-xdm"
    folder.mkdir(exist_ok=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mssante.settings",
            "DATABASE_URL": url,
            "DEBUG": "false",
            "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "VAR_DIR": tempfile.mkdtemp(prefix="bench-xdm-"),
            "LOG_LEVEL": "ERROR",
            "DB_CONN_MAX_AGE": "600",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load()}")
    data = bomb(folder)
    print(f"bomb: {len(data) / 1e6:.1f} MB zip, {MEMBERS} members of {MEMBER_BYTES / 2**20:.0f} MB")
    recreate_database(url)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed()
    measure(data, normal())
    print(f"load average at the end: {load()}")


def measure(data: bytes, small: bytes) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.models import User
    from mailboxes import cda, compose
    from mailboxes.delivery import DeliveryRefused
    from mailboxes.models import Mailbox, Membership
    from webmail import drafts
    from webmail.forms import ComposeForm

    box = Mailbox.objects.get(address=f"service0@{DOMAIN}")
    user = User.objects.create(username="banc")
    Membership.objects.create(mailbox=box, user=user)
    to = f"service1@{DOMAIN}"
    outcomes: set[str] = set()

    def autosave():
        upload = SimpleUploadedFile("IHE_XDM.zip", data, content_type="application/zip")
        form = ComposeForm(
            {"sender": box.pk, "to": to, "subject": "CR", "body": "Bonjour"},
            {"attachments": [upload]},
            boxes=[box],
            user=user,
            draft=True,
        )
        assert form.is_valid(), form.errors
        drafts.save_draft(form, user)

    def send():
        arguments = {
            "to": [to],
            "subject": "CR",
            "text": "Bonjour",
            "attachments": [("IHE_XDM.zip", "application/zip", data)],
        }
        compose.encoded_size(sender=box, **arguments)
        try:
            compose.send_from_mailbox(box, user, **arguments)
        except DeliveryRefused as refusal:  # after the fix: refused with its reason
            outcomes.add(refusal.code)
        else:
            outcomes.add("sent")

    rows = [
        ("draft autosave with the bomb", *timed(autosave, 3)),
        ("send with the bomb (size check + send)", *timed(send, 3)),
        ("cda_facts(bomb)", *timed(lambda: facts_or_refusal(cda, data), 3)),
        ("cda_facts(normal archive, 2 CDA)", *timed(lambda: cda.cda_facts(small), 20)),
    ]
    print(f"{'operation':<42} {'median s':>10} {'max s':>10}")
    for name, median, worst in rows:
        print(f"{name:<42} {median:>10.3f} {worst:>10.3f}")
    print("send outcome:", ", ".join(sorted(outcomes)))
    try:
        print("headers of the normal archive:", cda.mss_headers_for([("IHE_XDM.zip", "application/zip", small)]))
    except Exception as exc:  # noqa: BLE001 - printed, the bench goes on
        print("normal archive:", type(exc).__name__, exc)


if __name__ == "__main__":
    main()
