"""`manage.py sweep_store` (operations/store_sweep.py): a delivery whose transaction never commits
leaves its files, named by no row. The sweep moves them to quarantine after STORE_ORPHAN_HOURS,
brings back one that a row names again, and deletes what stayed STORE_QUARANTINE_DAYS; files that
rows name (messages, attachments, drafts, model attachments) never move."""

import os
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from automation import authoring
from automation.models import StandingAttachment
from mailboxes import compose
from mailboxes.models import Attachment, Message
from mailboxes.store import store_raw
from operations.store_sweep import QUARANTINE, sweep_store

pytestmark = pytest.mark.django_db

PDF = ("cr.pdf", "application/pdf", b"%PDF-1.4\n% sweep\n" + b"y" * 3000)


@pytest.fixture
def store(settings, tmp_path):
    """A storage folder of the test's own (the suite's is shared by every test of the process)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": None},
        },
    }
    return tmp_path


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def age(root, hours):
    """Every stored file as if written `hours` ago."""
    then = time.time() - hours * 3600
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def failed_delivery(cast):
    """A delivery killed between its files and its commit: the statement that writes its rows fails."""

    def fail(execute, sql, params, many, context):
        if "mailboxes_message" in sql and sql.lstrip().upper().startswith(("WITH", "INSERT")):
            raise RuntimeError("killed before the commit")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail), pytest.raises(RuntimeError):
        compose.send_from_mailbox(
            cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Perdu", text="Perdu", attachments=[PDF]
        )


def model_with_leaflet(cast, data: bytes) -> StandingAttachment:
    """A message model whose version sends a leaflet with every message: its standing attachment."""
    model = authoring.create_model(
        mailbox=cast.alice_box,
        service="Cardiologie",
        name="Préparation",
        subject="Préparation",
        body="Bonjour",
        attachments=[("fiche.pdf", "application/pdf", data)],
    )
    return StandingAttachment.objects.get(version__model=model)


def sweep(**kwargs):
    out = StringIO()
    call_command("sweep_store", stdout=out, **kwargs)
    return out.getvalue()


def test_a_failed_delivery_s_files_go_to_quarantine_then_away(cast, store, settings):
    kept = compose.send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Gardé", text="Gardé", attachments=[PDF]
    ).message
    named = {kept.raw.name, *Attachment.objects.filter(message=kept).values_list("file", flat=True)}
    before = set(files(store))
    assert named <= before
    failed_delivery(cast)
    assert Message.objects.filter(subject="Perdu").count() == 0
    left = set(files(store)) - before
    assert left and all(name.startswith("raw/") for name in left)  # its PDF is the kept one's file

    assert "0 fichier(s) mis en quarantaine" in sweep()  # younger than STORE_ORPHAN_HOURS
    assert set(files(store)) == before | left
    age(store, settings.STORE_ORPHAN_HOURS + 1)
    assert "Simulation : 1 fichier(s) mis en quarantaine" in sweep(dry_run=True)
    assert set(files(store)) == before | left

    assert "1 fichier(s) mis en quarantaine" in sweep()
    assert set(files(store)) == before | {QUARANTINE + name for name in left}
    assert kept.raw.open("rb").read()  # what rows name never moves, however old
    assert "0 supprimé(s)" in sweep()  # quarantined today: kept STORE_QUARANTINE_DAYS
    age(store, settings.STORE_QUARANTINE_DAYS * 24 + 1)
    assert "1 supprimé(s)" in sweep()
    assert set(files(store)) == before


def test_a_quarantined_file_that_a_row_names_again_comes_back(cast, store, settings):
    """The race the quarantine is for: a delivery took up an orphan's bytes just as it moved."""
    raw = b"From: a@b\r\nSubject: x\r\n\r\nrepris\r\n"
    digest, name = store_raw(raw)
    age(store, settings.STORE_ORPHAN_HOURS + 1)
    sweep_store()
    assert files(store) == [QUARANTINE + name]
    message = Message.objects.create(message_id="<repris@b>", from_address="a@b", sha256=digest, raw=name)
    report = sweep_store()
    assert report.restored == 1
    assert files(store) == [name]
    assert Message.objects.get(pk=message.pk).raw.open("rb").read() == raw


def test_a_draft_s_and_a_model_s_files_stay(cast, store, settings, client):
    """Drafts and message models write to the same folders: their rows name their files."""
    from django.urls import reverse

    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:compose"),
        {"sender": cast.alice_box.pk, "to": cast.charlie_box.address, "subject": "Brouillon", "body": "x", "save": "1"},
    )
    assert response.status_code in (200, 302)
    draft = Message.objects.get(subject="Brouillon")
    leaflet = model_with_leaflet(cast, b"%PDF-1.4 fiche de preparation").file
    before = files(store)
    assert draft.raw.name in before and leaflet in before
    age(store, settings.STORE_ORPHAN_HOURS + 1)
    report = sweep_store()
    assert report.quarantined == 0 and files(store) == before


def test_verify_store_names_a_missing_model_attachment(cast, store):
    """verify_store reads the message models' standing attachments too (a text column, not a
    FileField: they were left out)."""
    from django.core.files.storage import default_storage
    from django.core.management.base import CommandError

    leaflet = model_with_leaflet(cast, b"%PDF-1.4 fiche manquante")
    default_storage.delete(leaflet.file)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_store", stdout=out)
    assert f"MANQUANT : pièce jointe de modèle n° {leaflet.pk} ({leaflet.file})" in out.getvalue()


def test_every_file_field_is_a_stored_file_column():
    """A model given a FileField later must be added to STORED_FILES, or the sweep would take
    its files for orphans (and verify_store would not read them)."""
    from django.apps import apps
    from django.db import models

    from operations.store_check import STORED_FILES

    file_fields = {
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, models.FileField)
    }
    listed = {(model, field) for _kind, model, field in STORED_FILES}
    assert file_fields and file_fields <= listed
