"""Backups that restore (issue 14 item 6): a real drill, the way docs/operations.md says to do it.

On PostgreSQL (CI): `pg_dump -Fc` of the database and a tar of the stored files, then
`createdb` + `pg_restore` into a new database and the files unpacked into a new folder; the
restored copy is then checked by the product's own commands in a separate process (`migrate
--check`, `verify_store`, `audit_verify`) and a message is read from it. On SQLite the dump is the
database file, copied with SQLite's online backup API. Either way the drill then damages the
restored files and `verify_store` names what is missing and what is corrupt.
"""

import os
import sqlite3
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Attachment, Message

ROOT = Path(__file__).resolve().parents[2]
PDF = b"%PDF-1.4 compte rendu de la restauration\n" * 50


def run(args, env, check=True):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=120)


def pg_args() -> tuple[list[str], dict]:
    db = connection.settings_dict
    args = ["-h", db.get("HOST") or "127.0.0.1", "-p", str(db.get("PORT") or 5432), "-U", db.get("USER") or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": db["PASSWORD"]} if db.get("PASSWORD") else {})}
    return args, env


def back_up(folder: Path) -> Path:
    """The database dump and the files archive, as the operations guide does it."""
    media = Path(settings.MEDIA_ROOT)
    with tarfile.open(folder / "media.tar.gz", "w:gz") as archive:
        archive.add(media, arcname="media")
    if connection.vendor == "postgresql":
        args, env = pg_args()
        dump = folder / "mssante.dump"
        subprocess.run(
            ["pg_dump", *args, "-Fc", "-f", str(dump), connection.settings_dict["NAME"]], check=True, env=env
        )
        return dump
    dump = folder / "db.sqlite3"
    target = sqlite3.connect(dump)
    connection.ensure_connection()
    connection.connection.backup(target)  # SQLite's online backup API (the test database is in memory)
    target.close()
    return dump


def restore(dump: Path, folder: Path) -> str:
    """A new database and a new files folder from the backup; returns the DATABASE_URL."""
    var_dir = folder / "restored"
    var_dir.mkdir()
    with tarfile.open(dump.parent / "media.tar.gz") as archive:
        archive.extractall(var_dir, filter="data")
    if connection.vendor == "postgresql":
        args, env = pg_args()
        name = f"restore_drill_{uuid.uuid4().hex[:8]}"
        subprocess.run(["createdb", *args, name], check=True, env=env)
        subprocess.run(["pg_restore", *args, "--no-owner", "-d", name, str(dump)], check=True, env=env)
        db = connection.settings_dict
        host = db.get("HOST") or "127.0.0.1"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgres://{db.get('USER') or 'postgres'}{password}@{host}:{db.get('PORT') or 5432}/{name}"
    return f"sqlite:///{dump}"


def drop(url: str) -> None:
    if url.startswith("postgres"):
        args, env = pg_args()
        subprocess.run(["dropdb", *args, "--if-exists", urlparse(url).path.lstrip("/")], check=False, env=env)


@pytest.mark.django_db(transaction=True)
def test_restore_drill(cast, tmp_path):
    sent = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="Compte rendu à restaurer",
        text="Le texte du message restauré.",
        attachments=[("cr.pdf", "application/pdf", PDF)],
    ).message
    call_command("verify_store")  # the source is whole before the backup

    dump = back_up(tmp_path)
    url = restore(dump, tmp_path)
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "CELERY_"))},
            "DJANGO_SETTINGS_MODULE": "mssante.settings",
            "DEBUG": "true",
            "DATABASE_URL": url,
            "VAR_DIR": str(tmp_path / "restored"),
        }
        manage = [sys.executable, "manage.py"]
        assert run([*manage, "migrate", "--check"], env).returncode == 0
        store = run([*manage, "verify_store"], env)
        assert "Stockage intègre : 2 objet(s) vérifié(s), 2 fichier(s)" in store.stdout, store.stdout + store.stderr
        assert "Chaîne intègre" in run([*manage, "audit_verify"], env).stdout
        read = run(
            [
                *manage,
                "shell",
                "--no-imports",
                "-c",
                "from mailboxes.models import Message; from mailboxes.store import read_raw; "
                f"m = Message.objects.get(pk={sent.pk}); raw = read_raw(m); "
                "print(m.subject); print(len(raw) == m.size); print(m.attachments.get().file.read() == "
                f"{PDF!r})",
            ],
            env,
        )
        assert read.stdout.splitlines() == ["Compte rendu à restaurer", "True", "True"], read.stderr

        # Damage the restored files: verify_store names the missing and the corrupt ones by id.
        media = tmp_path / "restored" / "media"
        attachment = Attachment.objects.get(message=sent)
        (media / attachment.file.name).write_bytes(b"%PDF-1.4 altered")
        (media / Message.objects.get(pk=sent.pk).raw.name).unlink()
        damaged = run([*manage, "verify_store"], env, check=False)
        assert damaged.returncode == 1
        assert f"MANQUANT : message n° {sent.pk}" in damaged.stdout
        assert f"CORROMPU : pièce jointe n° {attachment.pk}" in damaged.stdout
    finally:
        drop(url)
