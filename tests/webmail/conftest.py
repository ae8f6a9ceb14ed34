"""Helpers of the webmail tests. Messages arrive through the real path (`mailboxes.compose`);
`bulk_entries` writes rows directly only where a test needs hundreds of them quickly."""

import datetime
import hashlib

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from mailboxes import compose
from mailboxes.models import Entry, Folder, Message


@pytest.fixture
def send():
    """send(sender_box, actor, to=[...], subject=..., text=..., **kwargs) -> DeliveryResult"""

    def _send(sender, actor, *, to, subject="Compte rendu", text="Bonjour,\nvoici le compte rendu.", **kwargs):
        return compose.send_from_mailbox(sender, actor, to=to, subject=subject, text=text, **kwargs)

    return _send


@pytest.fixture
def received(cast, send):
    """A message from Charlie to cardiologie@ (with a PDF), and its entry in the shared box."""
    result = send(
        cast.charlie_box,
        cast.charlie,
        to=[cast.cardio.address],
        subject="Adressage de M. Lambert",
        text="Chère consœur,\nje vous adresse M. Lambert pour une échographie cardiaque.\n",
        attachments=[("courrier-adressage.pdf", "application/pdf", b"%PDF-1.4\n% test\n" + b"x" * 2000)],
    )
    return Entry.objects.get(mailbox=cast.cardio, message=result.message)


def bulk_entries(mailbox, count, *, start=None, seen=True, subject="Message", thread_key=""):
    """`count` messages in the box's inbox, one minute apart, newest last."""
    raw = b"From: x@clinique-du-lac.mssante.fr\r\nSubject: bulk\r\n\r\nbulk\r\n"
    digest = hashlib.sha256(raw).hexdigest()
    name = f"raw/{digest[:2]}/{digest}.eml"
    if not default_storage.exists(name):
        default_storage.save(name, ContentFile(raw))
    start = start or timezone.now() - datetime.timedelta(days=30)
    messages = Message.objects.bulk_create(
        [
            Message(
                message_id=f"<bulk-{mailbox.pk}-{i}-{start.timestamp()}@clinique-du-lac.mssante.fr>",
                thread_key=thread_key,
                from_address="charlie.durand@clinique-du-lac.mssante.fr",
                from_name="Dr Charlie DURAND",
                to=[{"address": mailbox.address, "name": ""}],
                subject=f"{subject} {i}",
                date=start + datetime.timedelta(minutes=i),
                text_body=f"Corps {i}",
                size=len(raw),
                sha256=digest,
                raw=name,
            )
            for i in range(count)
        ]
    )
    inbox = mailbox.folder(Folder.Role.INBOX)
    return Entry.objects.bulk_create(
        [Entry(mailbox=mailbox, message=m, folder=inbox, received_at=m.date, seen=seen) for m in messages]
    )
