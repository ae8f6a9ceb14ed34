"""Drafts keep their attachments (issue 6 §2): saved with the draft like any message's, listed
with a "conserver" box when the draft is reopened, sent with it, dropped when unticked; only
through the access-checked fetches."""

from email import policy
from email.parser import BytesParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailboxes.models import Attachment, Entry, Folder, Mailbox, Message
from mailboxes.store import read_raw

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n% convocation\n" + bytes(range(256)) * 40


def pdf(name="convocation.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def save_with_button(client, **data):
    """The "Enregistrer le brouillon" button of the compose form (no script)."""
    payload = {"subject": "Convocation", "body": "Bonjour", "action": "draft", **data}
    return client.post(reverse("webmail:compose"), payload)


def delivered_attachments(message: Message) -> list[tuple[str, bytes]]:
    parsed = BytesParser(policy=policy.default).parsebytes(read_raw(message))
    return [(part.get_filename(), part.get_payload(decode=True)) for part in parsed.iter_attachments()]


def test_draft_keeps_its_attachment_until_sent(cast, client):
    client.force_login(cast.alice)
    response = save_with_button(client, sender=cast.alice_box.pk, to=cast.charlie_box.address, attachments=[pdf()])
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('webmail:compose')}?brouillon={draft.pk}"
    assert draft.folder.role == Folder.Role.DRAFTS and draft.message.has_attachments
    stored = draft.message.attachments.get()
    assert (stored.filename, stored.size) == ("convocation.pdf", len(PDF))
    with stored.file.open("rb") as handle:
        assert handle.read() == PDF
    assert delivered_attachments(draft.message) == [("convocation.pdf", PDF)]

    # Reopened later: the text and the file, with its "conserver" box ticked.
    page = client.get(reverse("webmail:message", args=[draft.pk]), follow=True)
    assert page.context["form"].initial["keep_attachments"] == [stored.pk]
    html = page.content.decode()
    assert f'name="keep_attachments" value="{stored.pk}"' in html
    assert "convocation.pdf" in html and "conserver" in html

    # An autosave of the text alone keeps the file (and its id).
    saved = client.post(
        reverse("webmail:draft_save"),
        {
            "sender": cast.alice_box.pk,
            "to": cast.charlie_box.address,
            "subject": "Convocation",
            "body": "Bonjour, v2",
            "draft": draft.pk,
            "keep_attachments": [stored.pk],
        },
    ).json()
    assert saved["attachments"] == [{"id": stored.pk, "filename": "convocation.pdf", "size": len(PDF)}]

    # Sent with one more file: the delivered message carries both; the draft is gone.
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": cast.charlie_box.address,
            "subject": "Convocation",
            "body": "Bonjour, v2",
            "draft": draft.pk,
            "keep_attachments": [stored.pk],
            "attachments": [pdf("ordre-du-jour.pdf", b"%PDF-1.4 odj")],
        },
    )
    assert response.status_code == 302
    assert not Entry.objects.filter(pk=draft.pk).exists()
    received = Entry.objects.get(mailbox=cast.charlie_box, message__subject="Convocation")
    assert received.folder.role == Folder.Role.INBOX
    assert sorted(delivered_attachments(received.message)) == [
        ("convocation.pdf", PDF),
        ("ordre-du-jour.pdf", b"%PDF-1.4 odj"),
    ]


def test_autosave_posts_files_and_unticking_conserver_drops_them(cast, client):
    client.force_login(cast.alice)
    base = {"sender": cast.alice_box.pk, "to": cast.charlie_box.address, "subject": "Sans PJ", "body": "x"}
    first = client.post(reverse("webmail:draft_save"), {**base, "attachments": [pdf()]}).json()
    assert [a["filename"] for a in first["attachments"]] == ["convocation.pdf"]
    draft = Entry.objects.get(pk=first["draft"])
    # Unticked: the next save drops it from the draft...
    second = client.post(reverse("webmail:draft_save"), {**base, "draft": draft.pk}).json()
    assert second["draft"] == draft.pk and second["attachments"] == []
    draft.message.refresh_from_db()
    assert not draft.message.attachments.exists() and not draft.message.has_attachments
    assert delivered_attachments(draft.message) == []
    # ...and a message sent from a draft without ticking it does not carry it either.
    third = client.post(reverse("webmail:draft_save"), {**base, "draft": draft.pk, "attachments": [pdf()]}).json()
    client.post(reverse("webmail:compose"), {**base, "draft": third["draft"]})
    received = Entry.objects.get(mailbox=cast.charlie_box, message__subject="Sans PJ")
    assert delivered_attachments(received.message) == []
    assert not received.message.attachments.exists()


def test_encoded_size_check_counts_the_kept_attachments(cast, client):
    client.force_login(cast.alice)
    save_with_button(client, sender=cast.alice_box.pk, to=cast.charlie_box.address, attachments=[pdf()])
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    stored = draft.message.attachments.get()
    # The file (10 Ko) fits; once encoded in base64 with the message, it does not.
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(max_message_bytes=len(PDF) + 1500)
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": cast.charlie_box.address,
            "subject": "Trop lourd",
            "body": "x",
            "draft": draft.pk,
            "keep_attachments": [stored.pk],
        },
    )
    assert response.status_code == 400
    assert "Une fois encodé" in response.content.decode()
    assert not Message.objects.filter(subject="Trop lourd").exists()
    assert Entry.objects.filter(pk=draft.pk).exists()


def test_another_user_gets_404_on_the_draft_and_its_attachments(cast, client):
    client.force_login(cast.alice)
    save_with_button(client, sender=cast.alice_box.pk, to=cast.charlie_box.address, attachments=[pdf()])
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    stored = draft.message.attachments.get()
    client.force_login(cast.charlie)
    assert client.get(reverse("webmail:compose"), {"brouillon": draft.pk}).status_code == 404
    assert client.get(reverse("webmail:message", args=[draft.pk])).status_code == 404
    # Naming Alice's draft and its attachment does not put the file in Charlie's message.
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.charlie_box.pk,
            "to": cast.alice_box.address,
            "subject": "Pirate",
            "body": "x",
            "draft": draft.pk,
            "keep_attachments": [stored.pk],
        },
    )
    assert response.status_code == 400
    assert not Message.objects.filter(subject="Pirate").exists()
    saved = client.post(
        reverse("webmail:draft_save"),
        {"sender": cast.charlie_box.pk, "subject": "Pirate", "draft": draft.pk, "keep_attachments": [stored.pk]},
    )
    assert saved.status_code == 400
    assert Attachment.objects.filter(sha256=stored.sha256).count() == 1
    assert Entry.objects.get(pk=draft.pk).message.attachments.get().pk == stored.pk
