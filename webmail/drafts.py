"""Drafts saved automatically while writing (issue 6 §2): a draft is a real message in the
Drafts folder of the sending box, replaced at each save and removed once the message is sent.
It is never delivered: it does not go through the delivery path, only into the sender's box.
Its attachments (uploaded files, kept ones of the draft or of a forwarded message) are in its raw
message and stored like any message's: bytes by content hash (`mailboxes.store`), one
`Attachment` row each, so reopening the draft lists them and sending it can keep them.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from mailboxes import compose
from mailboxes.delivery import count_draft
from mailboxes.mime import parse_message
from mailboxes.models import Attachment, Entry, Folder, Message
from mailboxes.store import store_attachment, store_raw
from webmail.organise import delete_entries
from webmail.replies import chosen_attachments
from webmail.selectors import pro_entry


def _store_attachments(message: Message, parsed) -> None:
    """Make the draft's Attachment rows those of its new raw message. A file kept from the
    previous save keeps its row (and id), so the editor's "conserver" boxes stay valid."""
    previous = {}
    for row in message.attachments.all():
        previous.setdefault((row.sha256, row.filename), []).append(row)
    for position, item in enumerate(parsed.attachments):
        data = item.data
        digest, name = store_attachment(data)
        same = previous.get((digest, item.filename[:255])) or []
        if same:
            row = same.pop(0)
            if row.position != position:
                Attachment.objects.filter(pk=row.pk).update(position=position)
            continue
        Attachment.from_part(item, sha256=digest, file=name, position=position, size=len(data), message=message).save()
    stale = [row.pk for rows in previous.values() for row in rows]
    if stale:
        Attachment.objects.filter(pk__in=stale).delete()


@transaction.atomic
def save_draft(form, user) -> Entry:
    data = form.cleaned_data
    sender = data["sender"]
    parent = None
    if data.get("reply_to") and data.get("mode") in ("reply", "all"):
        parent = pro_entry(user, data["reply_to"]).message
    raw = compose.build_message(
        sender=sender,
        to=data.get("to") or [],
        cc=data.get("cc") or [],
        subject=data.get("subject") or "",
        text=data.get("body") or "",
        html=data.get("html"),
        in_reply_to=parent,
        request_mdn=bool(data.get("request_mdn")),
        attachments=chosen_attachments(form),
        mss_headers=False,  # computed when it is sent: an autosave never inflates an archive
        recipient_names=form.recipient_names,
    )
    parsed = parse_message(raw)
    digest, name = store_raw(raw)
    fields = {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": " ".join(parsed.references),
        "from_address": sender.address,
        "from_name": sender.display_name,
        "to": [{"address": a, "name": form.recipient_names.get(a, "")} for a in data.get("to") or []],
        "cc": [{"address": a, "name": form.recipient_names.get(a, "")} for a in data.get("cc") or []],
        "subject": data.get("subject") or "",
        "date": timezone.now(),
        "text_body": data.get("body") or "",
        "html_body": parsed.html_body,
        "mdn_requested_to": sender.address if data.get("request_mdn") else "",
        "size": len(raw),
        "has_attachments": any(not a.is_inline for a in parsed.attachments),
        "sha256": digest,
        "raw": name,
        "sender_mailbox": sender,
    }
    existing = None
    if data.get("draft"):
        existing = (
            Entry.objects.select_for_update()
            .filter(pk=data["draft"], is_draft=True, mailbox__in=list(form.boxes))
            .select_related("message")
            .first()
        )
    if existing is not None and existing.mailbox_id == sender.pk:
        count_draft(sender.pk, len(raw), replaced_size=existing.message.size)
        Message.objects.filter(pk=existing.message_id).update(
            **{k: v for k, v in fields.items() if k != "sender_mailbox"}, sender_mailbox=sender, search_pending=True
        )
        Entry.objects.filter(pk=existing.pk).update(received_at=timezone.now())
        _store_attachments(existing.message, parsed)
        return existing
    if existing is not None:  # the sending box changed: the draft moves with it
        delete_entries([existing], actor=user)
    message = Message.objects.create(**fields)
    count_draft(sender.pk, len(raw))
    _store_attachments(message, parsed)
    return Entry.objects.create(
        mailbox=sender,
        message=message,
        folder=sender.folder(Folder.Role.DRAFTS),
        received_at=timezone.now(),
        seen=True,
        is_draft=True,
    )
