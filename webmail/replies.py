"""Writing in the webmail (issue 6 §2): the initial content of a new message, a reply, a reply
to all, a forward or a reopened draft, and sending through `mailboxes.compose` — the one
delivery path. Replies are built with `in_reply_to`, so compose sets In-Reply-To and References.
"""

from __future__ import annotations

import logging
import mimetypes
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.events import client_ip
from mailboxes import cda, compose
from mailboxes.delivery import DeliveryRefused
from mailboxes.display_text import display_name
from mailboxes.fanout import keep_recipients, send_one_per_patient
from mailboxes.models import Entry, Folder
from mailboxes.patient_domain import get_policy, is_patient_address
from patients import policy
from webmail import organise, sharing
from webmail.selectors import pro_entry

logger = logging.getLogger(__name__)


def _signature(box) -> str:
    return f"\n\n-- \n{box.signature}" if box.signature else ""


def written_on(entry: Entry) -> str:
    """When the quoted message was written, in French ("lundi 30 novembre 2026 à 9 h 12"): its
    `Date:` header, else (a message that came without one) when this box received it."""
    moment = timezone.localtime(entry.message.date or entry.received_at)
    return _("%(day)s à %(time)s") % {"day": date_format(moment, "l j F Y"), "time": time_format(moment)}


def _quoted(entry: Entry) -> str:
    message = entry.message
    when = written_on(entry)
    who = f"{message.from_name} <{message.from_address}>" if message.from_name else message.from_address
    lines = (message.text_body or "").splitlines() or [""]
    header = _("Le %(d)s, %(w)s a écrit :") % {"d": when, "w": who}
    return "\n\n" + header + "\n" + "\n".join("> " + line for line in lines[:2000])


def _forwarded(entry: Entry) -> str:
    message = entry.message
    to = ", ".join(r.get("address", "") for r in message.to or [])
    when = written_on(entry)
    return (
        "\n\n-------- "
        + _("Message transféré")
        + " --------\n"
        + _("De : %(v)s")
        % {"v": f"{message.from_name} <{message.from_address}>" if message.from_name else message.from_address}
        + "\n"
        + _("Date : %(v)s") % {"v": when}
        + "\n"
        + _("Objet : %(v)s") % {"v": message.subject}
        + "\n"
        + _("À : %(v)s") % {"v": to}
        + "\n\n"
        + (message.text_body or "")
    )


def forward_attachments_for(user, data) -> list:
    """The stored attachments the form may keep (access-checked): those of the message being
    forwarded and those already saved in the draft being edited."""
    items = []
    if data.get("mode") == "forward" and data.get("reply_to"):
        entry = pro_entry(user, data.get("reply_to"))
        items += list(entry.message.attachments.filter(is_inline=False).order_by("position"))
    if data.get("draft"):
        try:
            items += draft_attachments(pro_entry(user, data.get("draft")))
        except Http404:  # sent or deleted meanwhile, or not this user's: nothing to keep
            pass
    return items


def draft_attachments(entry: Entry) -> list:
    """The attachments of a draft `entry` (fetched through `pro_entry`)."""
    if not entry.is_draft:
        return []
    return list(entry.message.attachments.filter(is_inline=False).order_by("position"))


def chosen_attachments(form) -> list[tuple[str, str, bytes]]:
    """(filename, content type, bytes) of the files uploaded with the form, then of the stored
    attachments it keeps (forwarded message, draft), read from the message store."""
    data = form.cleaned_data
    attachments = []
    for upload in data.get("attachments") or []:
        content_type = upload.content_type or mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
        upload.seek(0)
        attachments.append((upload.name, content_type, upload.read()))
    keep = set(data.get("keep_attachments") or [])
    for item in form.forward_attachments:
        if item.pk in keep:
            with item.file.open("rb") as handle:
                attachments.append((item.filename, item.content_type, handle.read()))
    return attachments


def distinct_reply_to(message) -> str:
    """The address the message's `Reply-To:` names when it is not the sender's own (compared
    without case), else "": the reading pane shows it ("Répondre à"), and a reply goes there."""
    reply_to = message.reply_to or ""
    return reply_to if reply_to and reply_to.lower() != (message.from_address or "").lower() else ""


def reply_to_name(message) -> str:
    """The display name of the message's `Reply-To:` (« Secrétariat cardio »), fit to show
    (`display_name`: none that looks like an address), when it names another address than the
    sender's; else ""."""
    return display_name(message.reply_to_name) if distinct_reply_to(message) else ""


def recipient_text(address: str, name: str = "") -> str:
    """A recipient as the composer's To field shows it: « Secrétariat cardio <cardio@…> », or
    the address alone. The field separates recipients by commas and semicolons and reads the
    address between the last angle brackets: a name keeps none of those characters."""
    name = " ".join("".join(c for c in display_name(name) if c not in ',;"').split())
    return f"{name} <{address}>" if name and address else address


def _chosen_box(request, boxes):
    """The sending box the composer opens on: `?bal=` when it is one of `boxes`, else the first
    nominative box, else the first box."""
    default = next((b for b in boxes if b.kind == "PER"), boxes[0])
    try:
        return {b.pk: b for b in boxes}.get(int(request.GET.get("bal", "")), default)
    except ValueError:
        return default


def initial_for(request, boxes) -> tuple[dict, dict]:
    """The compose form's initial values, and what else the page shows (`forward_attachments`,
    `original`, `draft_entry`, `reply_to_address`): a new message (`?bal=`, `?a=` from the
    directory), a reopened draft (`?brouillon=`), or an answer to a message (`?reponse=`, `?mode=`)."""
    sender = _chosen_box(request, boxes)
    initial = {"sender": sender.pk, "body": _signature(sender)}
    extra: dict = {"forward_attachments": [], "original": None}
    recipient = (request.GET.get("a") or "").strip()[:254]
    if recipient and "@" in recipient and not is_patient_address(recipient):
        initial["to"] = recipient  # "write to" from the directory (never an INS in a URL)
    if request.GET.get("brouillon"):
        entry = pro_entry(request.user, request.GET["brouillon"])
        return _reopened_draft(entry, extra) if entry.is_draft else (initial, extra)
    if not request.GET.get("reponse"):
        return initial, extra
    return _answer(request, boxes, sender, initial, extra)


def _reopened_draft(entry: Entry, extra: dict) -> tuple[dict, dict]:
    """The form as the draft `entry` (fetched through `pro_entry`) left it; a reply draft finds
    the message it answers in the same box, by its In-Reply-To."""
    message = entry.message
    parent = None
    if message.in_reply_to:
        parent = (
            Entry.objects.filter(mailbox_id=entry.mailbox_id, message__message_id=message.in_reply_to)
            .only("id")
            .first()
        )
    extra["forward_attachments"] = draft_attachments(entry)
    extra["draft_entry"] = entry
    initial = {
        "sender": entry.mailbox_id,
        "to": ", ".join(recipient_text(r.get("address", ""), r.get("name", "")) for r in message.to or []),
        "cc": ", ".join(recipient_text(r.get("address", ""), r.get("name", "")) for r in message.cc or []),
        "subject": message.subject,
        "body": message.text_body,
        "body_html": message.html_body,
        "request_mdn": bool(message.mdn_requested_to),
        "draft": entry.pk,
        "reply_to": parent.pk if parent else None,
        "mode": "reply" if parent else "",
        "keep_attachments": [a.pk for a in extra["forward_attachments"]],
    }
    return initial, extra


def _answer(request, boxes, sender, initial: dict, extra: dict) -> tuple[dict, dict]:
    """A reply, a reply to all or a forward of `?reponse=`, written from the box it is in."""
    mode = request.GET.get("mode", "reply")
    entry = pro_entry(request.user, request.GET["reponse"])
    # The composer quotes the original: that is a read too (issue 15 item 21).
    via = f"compose_{mode}" if mode in ("reply", "all", "forward") else "compose"
    sharing.open_entry(entry, request.user, ip=client_ip(request), via=via)
    message = entry.message
    sender = next((b for b in boxes if b.pk == entry.mailbox_id), sender)
    extra["original"] = entry
    initial.update({"sender": sender.pk, "reply_to": entry.pk, "mode": mode})
    if mode == "forward":
        attachments = list(message.attachments.filter(is_inline=False).order_by("position"))
        extra["forward_attachments"] = attachments
        initial.update(
            {
                "subject": compose.forward_subject(message.subject),
                "body": _signature(sender) + _forwarded(entry),
                "keep_attachments": [a.pk for a in attachments],
            }
        )
        return initial, extra
    to, cc = _reply_recipients(entry, {b.address for b in boxes}, everyone=mode == "all")
    extra["reply_to_address"] = reply_to_of_received(entry)
    initial.update(
        {
            "to": ", ".join(to),
            "cc": ", ".join(cc),
            "subject": compose.reply_subject(message.subject),
            "body": _signature(sender) + _quoted(entry),
        }
    )
    return initial, extra


def reply_note(user, posted) -> dict:
    """For a reply posted back with errors: the `original` and `reply_to_address` the composer
    showed when it opened, so the page still says where the reply goes. Nothing (and no read
    recorded again) for a new message, a forward, or an original the user no longer reaches."""
    if posted.get("mode") not in ("reply", "all") or not str(posted.get("reply_to") or "").isdigit():
        return {}
    try:
        entry = pro_entry(user, posted["reply_to"])
    except Http404:
        return {}
    return {"original": entry, "reply_to_address": reply_to_of_received(entry)}


def reply_to_of_received(entry: Entry) -> str:
    """The Reply-To the composer of a reply to `entry` names (`distinct_reply_to`, with its
    display name: « Secrétariat cardio <cardio@…> »), for a message the box received; none for
    one it sent (a reply to it goes to its recipients)."""
    sent_here = entry.message.sender_mailbox_id == entry.mailbox_id
    if sent_here or not distinct_reply_to(entry.message):
        return ""
    return recipient_text(entry.message.reply_to, reply_to_name(entry.message))


def _reply_recipients(entry: Entry, own: set[str], *, everyone: bool) -> tuple[list[str], list[str]]:
    """(To, Cc) of a reply to `entry`: to its sender — or where its `Reply-To:` says — and, for a
    reply to all, to its other recipients but the user's own boxes (`own`). A reply to a message
    sent from this box goes to its recipients again."""
    message = entry.message
    original_to = [r.get("address", "") for r in message.to or []]
    original_cc = [r.get("address", "") for r in message.cc or []]
    if message.sender_mailbox_id == entry.mailbox_id:
        to = original_to
        cc = original_cc if everyone else []
    else:
        to = [message.reply_to or message.from_address]  # RFC 5322 §3.6.2: Reply-To, when given
        if everyone:
            to += [a for a in original_to if a not in own]
        cc = [a for a in original_cc if a not in own] if everyone else []
    to = list(dict.fromkeys(a for a in to if a))
    cc = [a for a in dict.fromkeys(cc) if a not in to]
    # The Reply-To's display name goes with its address (« Secrétariat cardio <cardio@…> »).
    name = reply_to_name(message) if message.sender_mailbox_id != entry.mailbox_id else ""
    return [recipient_text(a, name if a == message.reply_to else "") for a in to], cc


@dataclass
class Outcome:
    ok: bool
    redirect: str = ""
    errors: list[str] = field(default_factory=list)


def _limit_for(sender, recipients) -> int:
    limit = sender.max_message_bytes or settings.MAILBOX_MAX_MESSAGE_BYTES
    if any(is_patient_address(a) for a in recipients):
        limit = min(limit, policy.message_limit())
    return limit


def send(request, form) -> Outcome:
    data = form.cleaned_data
    sender = data["sender"]
    parent_entry = pro_entry(request.user, data["reply_to"]) if data.get("reply_to") else None
    attachments = chosen_attachments(form)
    in_reply_to = parent_entry.message if parent_entry and data.get("mode") in ("reply", "all") else None
    arguments = {
        "to": data["to"],
        "cc": data["cc"],
        "subject": data["subject"],
        "text": data["body"],
        "html": data.get("html"),
        "attachments": attachments,
        "in_reply_to": in_reply_to,
        "request_mdn": data["request_mdn"],
        "recipient_names": form.recipient_names,
    }
    # An IHE_XDM archive is read within bounds, once (mailboxes/cda.py): a zip bomb is refused here.
    problems = [p for name, _type, content in attachments if (p := cda.archive_problem(name, content))]
    if problems:
        return Outcome(ok=False, errors=problems)
    size = compose.encoded_size(sender=sender, **arguments)
    limit = _limit_for(sender, data["to"] + data["cc"])
    if size > limit:
        return Outcome(
            ok=False,
            errors=[
                _(
                    "Une fois encodé pour l'envoi, le message pèserait %(s)s : la limite est de %(l)s. "
                    "Retirez des pièces jointes ou répartissez-les sur plusieurs messages."
                )
                % {"s": filesizeformat(size), "l": filesizeformat(limit)}
            ],
        )
    # One patient, one message (issue 15 item 9): several patients get a copy each, sent in one
    # transaction with the recipients kept on the message the sender is shown (`keep_recipients`:
    # a copy refused whole stores nothing else), so its page names every recipient typed. A
    # refusal of every copy leaves the block normally: its audit events and returns stay.
    replied = parent_entry if in_reply_to is not None else None
    recipients = data["to"] + data["cc"]
    refusal = None
    with transaction.atomic() if get_policy().own_copies(recipients, recipients) else nullcontext():
        try:
            outcome = send_one_per_patient(sender, request.user, source="webmail", replied_entry=replied, **arguments)
        except DeliveryRefused as refused:
            refusal = refused
        else:
            if outcome.primary is not None:
                keep_recipients(outcome.primary.message, [outcome])
    if refusal is not None:
        reasons = [d.reason for d in (getattr(refusal, "refused", None) or {}).values() if getattr(d, "reason", "")]
        return Outcome(ok=False, errors=reasons or [refusal.reason])
    if parent_entry is not None and data.get("mode") == "forward":
        Entry.objects.filter(pk=parent_entry.pk).update(forwarded=True)
    if data.get("draft"):
        draft = Entry.objects.filter(pk=data["draft"], mailbox=sender, is_draft=True).first()
        if draft is None:
            draft = Entry.objects.filter(pk=data["draft"], is_draft=True, mailbox__in=form.boxes).first()
        if draft is not None:
            organise.delete_entries([draft], actor=request.user)
    unreached = [a for a in outcome.refused if is_patient_address(a)]
    if unreached:
        messages.warning(
            request,
            ngettext(
                "%(n)d patient n'a pas reçu ce message (motif ci-dessous, et dans le suivi du message envoyé).",
                "%(n)d patients n'ont pas reçu ce message (motifs ci-dessous, et dans le suivi du message envoyé).",
                len(unreached),
            )
            % {"n": len(unreached)},
        )
    for address, decision in outcome.refused.items():
        messages.warning(request, _("Non distribué à %(a)s : %(r)s") % {"a": address, "r": decision.reason})
    if outcome.delivered_count and outcome.split:
        messages.success(
            request,
            _(
                "Message envoyé en %(n)d messages séparés, un par patient : aucun patient ne voit les autres "
                "destinataires patients."
            )
            % {"n": outcome.patient_count},
        )
    elif outcome.delivered_count:
        messages.success(request, _("Message envoyé."))
    sent = Entry.objects.filter(mailbox=sender, message=outcome.primary.message).only("id").first()
    if sent is not None:
        return Outcome(ok=True, redirect=reverse("webmail:message", args=[sent.pk]))
    return Outcome(ok=True, redirect=reverse("webmail:folder", args=[sender.pk, sender.folder(Folder.Role.SENT).pk]))
