"""A zip bomb named IHE_XDM.zip (issue 15 item 16): the total inflated size is capped, the archive
is parsed once, a draft autosave never inflates it, and a send refuses it with the reason."""

import io
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailboxes import cda
from mailboxes.models import Entry, Message

pytestmark = pytest.mark.django_db

CDA = (
    '<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
    '<code code="11488-4" codeSystem="2.16.840.1.113883.6.1"/>{padding}</ClinicalDocument>'
)


def archive(members: int, padding: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for i in range(members):
            package.writestr(f"IHE_XDM/SUBSET01/DOC{i:04d}.XML", CDA.format(padding=" " * padding))
    return buffer.getvalue()


@pytest.fixture
def bomb(settings):
    settings.XDM_MAX_DECOMPRESSED_BYTES = 4 * 1024 * 1024
    return archive(20, 1024 * 1024)  # 20 MB inflated from about 20 KB


def upload(data):
    return SimpleUploadedFile("IHE_XDM.zip", data, content_type="application/zip")


def test_autosave_of_a_draft_never_inflates_the_archive(cast, client, bomb, monkeypatch):
    inflated = []
    monkeypatch.setattr(cda, "read_within", lambda *a: inflated.append(a) or b"")
    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:draft_save"),
        {
            "sender": cast.alice_box.pk,
            "to": cast.charlie_box.address,
            "subject": "CR",
            "body": "x",
            "attachments": [upload(bomb)],
        },
    )
    assert response.status_code == 200 and response.json()["saved"]
    assert inflated == []
    draft = Entry.objects.get(pk=response.json()["draft"])
    assert draft.message.attachments.get().filename == "IHE_XDM.zip"


def test_sending_a_zip_bomb_is_refused_with_the_reason_and_quickly(cast, client, bomb):
    client.force_login(cast.alice)
    start = time.perf_counter()
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": cast.charlie_box.address,
            "subject": "CR",
            "body": "x",
            "attachments": [upload(bomb)],
        },
    )
    assert time.perf_counter() - start < 5
    assert response.status_code in (200, 400)
    assert "se décompresse en plus de 4 Mo" in response.content.decode()
    assert not Message.objects.filter(subject="CR").exists()


def test_inflating_stops_at_the_budget_whatever_the_archive_declares(settings):
    settings.XDM_MAX_DECOMPRESSED_BYTES = 1024 * 1024
    data = archive(1, 3 * 1024 * 1024)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        with pytest.raises(cda.ArchiveTooLarge):
            cda.read_within(package, package.infolist()[0], settings.XDM_MAX_DECOMPRESSED_BYTES)


def test_a_normal_archive_gives_its_headers_and_is_parsed_once(cast, monkeypatch):
    from mailboxes import compose

    cda._FACTS.clear()
    data = archive(2, 1000)
    calls = []
    original = cda._facts
    monkeypatch.setattr(cda, "_facts", lambda archive: calls.append(1) or original(archive))
    arguments = {
        "to": [cast.charlie_box.address],
        "subject": "CR",
        "text": "x",
        "attachments": [("IHE_XDM.zip", "application/zip", data)],
    }
    compose.encoded_size(sender=cast.alice_box, **arguments)
    result = compose.send_from_mailbox(cast.alice_box, cast.alice, **arguments)
    compose.build_message(sender=cast.alice_box, **arguments)
    assert "X-MSS-CODECDA: 11488-4" in result.message.raw.open("rb").read().decode()
    assert len(calls) == 1
