"""The one access-checked fetch per object type for API keys (STYLE.md §3).

A key reaches its own box and, for an applicative box, the organisational return box paired
with it (where the patients' replies arrive). Anything else is 404, like what does not exist.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404

from api.models import ApiKey, ReturnReply
from mailboxes.models import Attachment, Entry, Mailbox, Message


def box_ids_for_key(key: ApiKey) -> list[int]:
    ids = [key.mailbox_id]
    if key.mailbox.kind == Mailbox.Kind.APPLICATIVE and key.mailbox.return_mailbox_id:
        ids.append(key.mailbox.return_mailbox_id)
    return ids


def box_for_key(key: ApiKey, box: str) -> Mailbox:
    """`box` is the box's address or its id."""
    if "\x00" in str(box):  # no address holds one (and PostgreSQL takes no NUL in text)
        raise Http404("Boîte aux lettres introuvable")
    boxes = Mailbox.objects.filter(pk__in=box_ids_for_key(key), is_active=True)
    box = str(box)
    # An id is ASCII digits ("²".isdigit() too, and int() refuses it); anything else is an address.
    lookup = {"pk": int(box)} if box.isascii() and box.isdigit() else {"address": box.strip().lower()}
    found = boxes.filter(**lookup).first()
    if found is None:
        raise Http404("Boîte aux lettres introuvable")
    return found


def message_for_key(key: ApiKey, message_id) -> Message:
    """A message the key's boxes sent or hold."""
    ids = box_ids_for_key(key)
    try:
        pk = int(message_id)
    except (TypeError, ValueError):
        raise Http404("Message introuvable") from None
    message = (
        Message.objects.filter(pk=pk).filter(Q(sender_mailbox_id__in=ids) | Q(entries__mailbox_id__in=ids)).first()
    )
    if message is None:
        raise Http404("Message introuvable")
    return message


def entry_for_key(key: ApiKey, box: str, entry_id) -> Entry:
    mailbox = box_for_key(key, box)
    try:
        return Entry.objects.select_related("message", "folder", "mailbox").get(mailbox=mailbox, pk=int(entry_id))
    except (Entry.DoesNotExist, TypeError, ValueError):
        raise Http404("Message introuvable") from None


def attachment_for_key(key: ApiKey, box: str, entry_id, attachment_id) -> tuple[Attachment, Entry]:
    entry = entry_for_key(key, box, entry_id)
    try:
        return Attachment.objects.get(message_id=entry.message_id, pk=int(attachment_id)), entry
    except (Attachment.DoesNotExist, TypeError, ValueError):
        raise Http404("Pièce jointe introuvable") from None


def reply_for_key(key: ApiKey, box: str, reply_id) -> ReturnReply:
    mailbox = box_for_key(key, box)
    try:
        return ReturnReply.objects.select_related("message", "patient").get(mailbox=mailbox, pk=int(reply_id))
    except (ReturnReply.DoesNotExist, TypeError, ValueError):
        raise Http404("Réponse introuvable") from None
