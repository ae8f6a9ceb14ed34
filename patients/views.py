"""The patient's inbox (RULES.md §3) and the professional's "close the conversation" action.

Views parse and answer: every object is fetched through an access-checked function (404 for
"not yours"), and every change is an action of `patients/` modules named after the process.
"""

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from audit.events import client_ip
from health_record.api import documents_for_patient, save_document
from mailboxes.access import attachment_for_user, mailbox_for_user
from mailboxes.compose import reply_subject
from mailboxes.delivery import DeliveryRefused
from mailboxes.models import Folder, Mailbox
from patients import conversation as pro_conversation
from patients import inbox as selectors
from patients import policy, reading, sending, space
from patients.display import box_name, sender_name
from patients.forms import CloseSpaceForm, ComposeForm, NotificationEmailForm, SaveDocumentForm
from patients.models import Block, Conversation, Patient
from patients.panels import panels_for

log = logging.getLogger(__name__)


def _client_ip(request):
    """The client's address behind the trusted proxy (audit.events.client_ip)."""
    return client_ip(request)


def _space_is_open(patient: Patient) -> bool:
    return patient.space_state == Patient.SpaceState.ACTIVE


@login_required
def inbox(request):
    patient = selectors.patient_for_user(request.user)
    rows = selectors.conversations(patient)
    return render(
        request,
        "patients/inbox.html",
        {
            "patient": patient,
            "mailbox": patient.mailbox,
            "rows": rows,
            "can_write": _space_is_open(patient)
            and bool(policy.allowed_recipients(patient) or policy.outside_recipients(patient)),
            "space_open": _space_is_open(patient),
            "panels": panels_for(request, patient),
        },
    )


@login_required
def conversation(request, entry_id):
    """The exchange with one correspondent on one page (issue 16 item 7): every message, newest
    last, each with its documents; a `[FIN]` reads as the end of the exchange. What is shown is
    read: marked seen, audited, receipts sent (`patients.reading`)."""
    patient = selectors.patient_for_user(request.user)
    entry = selectors.entry_for_patient(request.user, patient, entry_id)
    entries = selectors.thread(patient, entry)
    received = [e for e in entries if e.folder.role == Folder.Role.INBOX]
    latest = received[-1] if received else entry
    reading.open_entries(received, request.user, _client_ip(request))
    state = selectors.reply_state(patient, latest)
    name = sender_name(latest.message) if received else _("Votre correspondant")
    return render(
        request,
        "patients/conversation.html",
        {
            "patient": patient,
            "entry": entry,
            "latest": latest,
            "name": name,
            "items": selectors.thread_items(entries),
            "state": state,
            "space_open": _space_is_open(patient),
            "block_url": _block_url(latest) if received else "",
            "blocked": bool(received) and space.is_blocked(patient, latest),
        },
    )


def _block_url(entry) -> str:
    """Where the patient blocks the sender of `entry`: its box when hosted here, the message
    itself for a professional of another operator; "" when it cannot be blocked."""
    sender_box = entry.message.sender_mailbox
    if sender_box is not None:
        return reverse("patients:block", args=[sender_box.pk]) if sender_box.kind != Mailbox.Kind.PATIENT else ""
    return reverse("patients:block_correspondent", args=[entry.pk]) if space.correspondent_address(entry) else ""


@login_required
def message_detail(request, entry_id):
    """One message alone (links from elsewhere); opening it is reading it (`patients.reading`)."""
    patient = selectors.patient_for_user(request.user)
    entry = selectors.entry_for_patient(request.user, patient, entry_id)
    message = entry.message
    reading.open_entries([entry], request.user, _client_ip(request))
    [item] = selectors.thread_items([entry])
    return render(
        request,
        "patients/message.html",
        {
            "patient": patient,
            "entry": entry,
            "message": message,
            "item": item,
            "name": sender_name(message) if entry.folder.role == "inbox" else _("Vous"),
            "attachments": item.attachments,
            "state": selectors.reply_state(patient, entry),
            "space_open": _space_is_open(patient),
        },
    )


def _documents(patient):
    return list(documents_for_patient(patient))


def _compose(request, patient, *, entry=None):
    """The composer, for a reply (`entry`) or a first message to an allowed box. What the
    person wrote is never dropped: a refused or invalid send shows the page again with their
    text, and says so (and that files chosen on the device must be chosen again)."""
    state = selectors.reply_state(patient, entry) if entry is not None else None
    refusal = _cannot_send(patient, state)
    if refusal and request.method != "POST":
        messages.error(request, refusal)
        if entry is not None and _space_is_open(patient):
            return redirect("patients:message", entry_id=entry.pk)
        return redirect("patients:inbox")
    recipients = None if entry is not None else _recipients(patient)
    if recipients == []:
        messages.info(
            request,
            _(
                "Vous pourrez écrire à un professionnel ou une structure dès qu'il vous aura écrit, "
                "ou à une pharmacie qui vous a délivré une ordonnance remboursée dans l'année."
            ),
        )
        return redirect("patients:inbox")
    form = ComposeForm(
        request.POST or None,
        request.FILES or None,
        recipients=recipients,
        documents=_documents(patient),
        show_profile=True,
    )
    error = ""
    if request.method == "POST":
        if refusal:
            error = (
                refusal
                + " "
                + _("Votre message n'a pas été envoyé : votre texte est ci-dessous, vous pouvez le copier.")
            )
        elif not form.is_valid():
            error = " ".join(message for errors in form.errors.values() for message in errors)
        else:
            error = _send(request, patient, entry, state, form)
            if not error:
                messages.success(request, _("Votre message a été envoyé."))
                return redirect("patients:conversation", entry_id=entry.pk) if entry else redirect("patients:inbox")
            if form.cleaned_data.get("text"):
                error += " " + _("Votre texte est conservé.")
        if request.FILES and not refusal:
            error += " " + _("Les fichiers de votre appareil n'ont pas été gardés : choisissez-les à nouveau.")
    return render(
        request,
        "patients/compose.html",
        {
            "patient": patient,
            "entry": entry,
            "name": sender_name(entry.message) if entry else "",
            "form": form,
            "error": error,
            "unsent": bool(refusal),
            "closed_by": state.closed_by if state else "",
            "max_file": settings.ATTACHMENT_MAX_BYTES,
        },
        status=400 if error else 200,
    )


def _cannot_send(patient, state) -> str:
    """Why the patient cannot send from this composer now ("" when they can): their space is
    closed, or the message they answer no longer takes a reply (the exchange was closed)."""
    if not _space_is_open(patient):
        return _("Votre messagerie est clôturée : vous ne pouvez plus envoyer de message.")
    if state is not None and not state.allowed:
        return _("Vous ne pouvez pas répondre à ce message.")
    return ""


def _recipients(patient) -> list[tuple[str, str]]:
    """Whom a first message may go to: the boxes that wrote to the patient, the pharmacies."""
    recipients = [(b.address, box_name(b)) for b in policy.allowed_recipients(patient)]
    recipients += [(address, sender_name(m)) for address, m in policy.outside_recipients(patient)]
    return recipients


def _send(request, patient, entry, state, form) -> str:
    """Send the composed message; "" when sent, else what went wrong (a refused file is also
    shown under the files field, linked to it)."""
    data = form.cleaned_data
    if entry is not None:
        to, subject = state.target, reply_subject(entry.message.subject)
    else:
        to, subject = data["to"], data["subject"]
    try:
        with transaction.atomic():
            sending.send_from_patient(
                patient,
                request.user,
                to=to,
                subject=subject,
                text=data["text"],
                in_reply_to=entry.message if entry is not None else None,
                include_profile=data.get("include_profile", False),
                document_ids=data.get("documents", []),
                uploads=data.get("files", []),
            )
    except ValidationError as exc:
        form.add_error("files", exc)
        return " ".join(exc.messages)
    except DeliveryRefused as exc:
        return exc.reason
    return ""


@login_required
def reply(request, entry_id):
    patient = selectors.patient_for_user(request.user)
    entry = selectors.entry_for_patient(request.user, patient, entry_id)
    return _compose(request, patient, entry=entry)


@login_required
def compose(request):
    patient = selectors.patient_for_user(request.user)
    return _compose(request, patient)


@login_required
def save_attachment(request, attachment_id):
    """ "Enregistrer dans mes documents" (RULES.md §3): title, date, category; ≤ 5 MB; formats."""
    from django.template.defaultfilters import filesizeformat

    patient = selectors.patient_for_user(request.user)
    attachment, entry = attachment_for_user(request.user, attachment_id)
    if entry.mailbox_id != patient.mailbox_id:
        raise Http404("Pièce jointe introuvable")
    title = attachment.filename.rsplit(".", 1)[0]
    date = timezone.localdate(entry.message.date or entry.received_at)
    form = SaveDocumentForm(request.POST or None, initial={"title": title, "date": date, "kind": "health"})
    error = ""
    if attachment.size > settings.HEALTH_DOCUMENT_MAX_BYTES:
        error = _("Ce fichier pèse %(size)s : un document de votre dossier ne peut pas dépasser %(limit)s.") % {
            "size": filesizeformat(attachment.size),
            "limit": filesizeformat(settings.HEALTH_DOCUMENT_MAX_BYTES),
        }
    elif request.method == "POST" and form.is_valid():
        with attachment.file.open("rb") as handle:
            data = handle.read()
        try:
            save_document(
                patient,
                data=data,
                filename=attachment.filename,
                title=form.cleaned_data["title"],
                date=form.cleaned_data["date"],
                category=form.cleaned_data["category"],
                kind=form.cleaned_data["kind"],
                actor=request.user,
                source_attachment=attachment,
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, _("Le document a été enregistré dans vos documents."))
            return redirect("patients:message", entry_id=entry.pk)
    return render(
        request,
        "patients/save_attachment.html",
        {"patient": patient, "entry": entry, "attachment": attachment, "form": form, "error": error},
        status=400 if error else 200,
    )


@login_required
def settings_page(request):
    patient = selectors.patient_for_user(request.user)
    form = NotificationEmailForm(request.POST or None, initial={"notification_email": patient.notification_email})
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["notification_email"]
        space.set_notification_email(patient, email, request.user)
        if email:
            messages.success(request, _("Votre adresse de notification est enregistrée."))
        else:
            messages.success(request, _("Vous ne serez plus prévenu par e-mail de vos nouveaux messages."))
        return redirect("patients:settings")
    blocks = list(Block.objects.filter(patient=patient).select_related("mailbox"))
    blocked_ids = {b.mailbox_id for b in blocks}
    blocked_addresses = {b.address for b in blocks}
    outside = space.outside_correspondents(patient)
    candidates = [
        (reverse("patients:block", args=[b.pk]), box_name(b))
        for b in space.blockable_mailboxes(patient)
        if b.pk not in blocked_ids
    ]
    candidates += [
        (reverse("patients:block_correspondent", args=[e.pk]), sender_name(e.message))
        for address, e in outside.items()
        if address not in blocked_addresses
    ]
    return render(
        request,
        "patients/settings.html",
        {
            "patient": patient,
            "form": form,
            "blocks": [(b, space.block_name(b, outside)) for b in blocks],
            "candidates": candidates,
            "space_open": _space_is_open(patient),
        },
        status=400 if form.errors else 200,
    )


@login_required
def block(request, mailbox_id):
    """Blocking is confirmed first (a page that says what it does, or the conversation page's
    unfolded explanation): a POST without `confirm` only shows the confirmation."""
    patient = selectors.patient_for_user(request.user)
    mailbox = get_object_or_404(space.blockable_mailboxes(patient), pk=mailbox_id)
    if request.method == "POST" and request.POST.get("confirm") == "on":
        space.block_mailbox(patient, mailbox, request.user)
        messages.success(request, _("%(name)s ne pourra plus vous écrire.") % {"name": box_name(mailbox)})
        return redirect("patients:settings")
    return render(
        request, "patients/block_confirm.html", {"patient": patient, "mailbox": mailbox, "name": box_name(mailbox)}
    )


@login_required
def block_correspondent(request, entry_id):
    """Blocking a professional of another operator, from a message they sent (no local box to
    name): confirmed first, like `block`."""
    patient = selectors.patient_for_user(request.user)
    entry = selectors.entry_for_patient(request.user, patient, entry_id)
    if not space.correspondent_address(entry):
        raise Http404("Correspondant introuvable")
    name = sender_name(entry.message)
    if request.method == "POST" and request.POST.get("confirm") == "on":
        space.block_correspondent(patient, entry, request.user)
        messages.success(request, _("%(name)s ne pourra plus vous écrire.") % {"name": name})
        return redirect("patients:settings")
    return render(request, "patients/block_confirm.html", {"patient": patient, "name": name})


@login_required
@require_POST
def unblock(request, block_id):
    patient = selectors.patient_for_user(request.user)
    block_row = get_object_or_404(Block.objects.select_related("mailbox"), pk=block_id, patient=patient)
    name = space.block_name(block_row)
    space.unblock_mailbox(patient, block_row, request.user)
    messages.success(request, _("%(name)s peut de nouveau vous écrire.") % {"name": name})
    return redirect("patients:settings")


@login_required
def close_space(request):
    patient = selectors.patient_for_user(request.user)
    if not _space_is_open(patient):
        return redirect("patients:settings")
    form = CloseSpaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        space.close_space(patient, request.user)
        messages.success(
            request, _("Votre messagerie est clôturée. Les professionnels en seront avertis s'ils vous écrivent.")
        )
        return redirect("patients:settings")
    return render(request, "patients/close_space.html", {"patient": patient, "form": form})


# --- The professional side ----------------------------------------------------------------------


@login_required
def pro_close_conversation(request, mailbox_id, patient_id):
    """ "Clôturer l'échange": sends `[FIN]` from the professional's box (RULES.md §3)."""
    mailbox = mailbox_for_user(request.user, mailbox_id)
    if mailbox.kind == Mailbox.Kind.PATIENT:
        raise Http404("Boîte aux lettres introuvable")
    conversation = get_object_or_404(
        Conversation.objects.select_related("patient"), mailbox=mailbox, patient_id=patient_id
    )
    patient = conversation.patient
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    # The confirmation is asked before the POST: the panel's required checkbox, or this
    # view's GET page for a link. A POST without it only shows the confirmation page.
    if request.method == "POST" and request.POST.get("confirm") == "on":
        try:
            pro_conversation.close_conversation(mailbox, patient, request.user)
        except DeliveryRefused as exc:
            messages.error(request, _("L'échange n'a pas pu être clôturé : %(reason)s") % {"reason": exc.reason})
        else:
            messages.success(request, _("L'échange est clôturé : le patient ne peut plus vous répondre."))
        return redirect(next_url or reverse("home"))
    return render(
        request,
        "patients/pro_close_confirm.html",
        {"mailbox": mailbox, "patient": patient, "conversation": conversation, "next": next_url},
    )
