"""`POST /api/v1/messages` as a service (issue 10 §1): from the key's box, through
`mailboxes.fanout.send_one_per_patient` (one message per patient) and so through the one
delivery path `mailboxes.delivery.send_message` (source "api"). Optional message model of the
automation app, rendered for each patient. Returns the answer body; raises `Problem`.
"""

from __future__ import annotations

import datetime
import hashlib
import json

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from api import hooks
from api.access import box_ids_for_key
from api.models import ApiKey
from api.problems import Problem
from automation import calendar, convocations
from automation import sending as automation_sending
from automation.models import MessageModel
from mailboxes.delivery import DeliveryRefused, DeliveryResult, refusal_text
from mailboxes.fanout import FanOutResult, keep_recipients, patients_among, send_one_per_patient
from mailboxes.identifiers import ins_error
from mailboxes.models import Entry, Mailbox, Message
from mailboxes.patient_domain import Decision, get_policy
from patients import policy
from patients.models import Patient


def body_fingerprint(data: dict, attachments: list[tuple[str, str, bytes]]) -> str:
    """The same request, whether JSON or multipart: its fields and its files' hashes."""
    canonical = {k: v for k, v in data.items() if k not in ("attachments", "files")}
    canonical["attachments"] = [[n, t, hashlib.sha256(d).hexdigest()] for n, t, d in attachments]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def attachments_of(data: dict) -> list[tuple[str, str, bytes]]:
    files = [
        (a["filename"], a.get("content_type") or "application/octet-stream", a["content_base64"])
        for a in data["attachments"]
    ]
    for upload in data["files"]:
        name = (upload.name or "fichier").rsplit("/", 1)[-1]
        files.append((name, upload.content_type or "application/octet-stream", upload.read()))
    return files


def needs_one_transaction(data: dict, *, idempotent: bool) -> bool:
    """Whether the call wraps its sending in a transaction of its own, so that everything it
    writes commits together (or not at all): its idempotency answer, several messages (a
    message model, or several patients: one message each), or a reply's mark on the entry it
    answers. A plain message is one delivery: the delivery's own transaction already holds its
    rows and the call's audit event (`events_with_next_delivery`), so no outer transaction is
    opened (no savepoint around the delivery; the domain names come from the process's cache,
    which a transaction bypasses). Whether several patients each get a copy of their own is the
    patient policy's rule, asked as `send_one_per_patient` asks it."""
    if idempotent or data.get("model") is not None or data.get("in_reply_to"):
        return True
    addresses = [*data["to"], *data["cc"]]
    return bool(get_policy().own_copies(addresses, addresses))


def parent_message(key: ApiKey, message_id: str) -> tuple[Message | None, Entry | None]:
    """The message a call answers, among those the key's boxes sent or hold (an applicative
    box's key also reads its paired return box, where the patients' replies arrive), and the
    entry to mark answered when it is not the sending box's own: the return box's."""
    if not message_id:
        return None, None
    value = message_id.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    box_ids = box_ids_for_key(key)
    parent = (
        Message.objects.filter(message_id=value)
        .filter(Q(sender_mailbox_id__in=box_ids) | Q(entries__mailbox_id__in=box_ids))
        .order_by("-id")
        .first()
    )
    if parent is None:
        raise Problem("in_reply_to_unknown", f"Aucun message {value} dans la boîte {key.mailbox.address}.")
    held = list(parent.entries.filter(mailbox_id__in=box_ids).order_by("id"))
    if parent.sender_mailbox_id == key.mailbox_id or any(e.mailbox_id == key.mailbox_id for e in held):
        return parent, None  # the sending box's own entry is marked (mailboxes.compose)
    return parent, held[0] if held else None


def send(key: ApiKey, data: dict, attachments: list[tuple[str, str, bytes]]) -> dict:
    box = key.mailbox
    parent, replied_entry = parent_message(key, data["in_reply_to"])
    common = {
        "source": "api",
        "in_reply_to": parent,
        "replied_entry": replied_entry,
        "request_mdn": data["request_read_receipt"],
    }
    try:
        if data.get("model") is not None:
            results = send_with_model(box, data, attachments, common)
        else:
            results = [
                send_one_per_patient(
                    box,
                    None,
                    to=data["to"],
                    cc=data["cc"],
                    subject=data["subject"],
                    text=data["text"],
                    html=data["html"] or None,
                    attachments=attachments,
                    **common,
                )
            ]
    except DeliveryRefused as refusal:
        raise refused(refusal) from None
    return answer(results, box)


def send_with_model(box: Mailbox, data: dict, attachments, common) -> list[FanOutResult]:
    """A model is written to patients: one rendering, and one message, per patient."""
    model = MessageModel.objects.filter(pk=data["model"], mailbox=box, is_active=True).first()
    version = model.current if model is not None else None
    if version is None:
        raise Problem(
            "validation_error", extra={"errors": {"model": ["Aucun modèle actif de cette boîte porte cet id."]}}
        )
    addresses = list(dict.fromkeys(data["to"] + data["cc"]))
    patients = patients_among(addresses)
    if len(patients) != len(addresses):
        raise Problem(
            "validation_error",
            extra={"errors": {"to": ["Un modèle de message s'adresse à des patients seulement."]}},
        )
    # A convocation model: the appointment is read as the webmail's form and the lists read it
    # (written "lundi 14 juin 2027", "9 h 30" in the message), and each patient gets a
    # convocation: the invitation (.ics) the text announces, and its reminders.
    starts_at = appointment(data["fields"]) if model.is_appointment else None
    standing = automation_sending.AttachmentCache().get(version)
    rendered = []
    no_patient: dict[str, Decision] = {}
    for address in patients:
        patient = Patient.objects.filter(mailbox__address=address.lower()).first()
        composed = automation_sending.compose(version, patient, data["fields"], starts_at)
        if patient is None and (composed.missing or starts_at is not None):
            # The fields the patient's identity fills are missing (or a convocation has nobody
            # to belong to) because nobody holds this address: say so (the policy's refusal)
            # rather than name the fields.
            no_patient[address] = refusal_without_patient(address)
            continue
        if composed.missing:
            raise Problem("model_fields_missing", automation_sending.missing_message(composed.missing))
        rendered.append((address, composed, patient))
    if no_patient and (len(patients) == 1 or not rendered):
        first = next(iter(no_patient.values()))
        raise DeliveryRefused(first.code, first.reason, refused=no_patient)
    # The box's daily limit, as the webmail's convocations and the lists count it (one home:
    # `automation.sending.check_daily_limit`), before any convocation is made or message sent.
    check_daily_limit(box, len(rendered))
    results = [FanOutResult(refused={address: decision}) for address, decision in no_patient.items()]
    for address, composed, patient in rendered:
        invitation = []
        convocation = None
        if starts_at is not None:
            convocation = convocations.new_convocation(
                model=model, patient=patient, starts_at=starts_at, user=None, values=data["fields"]
            )
            invitation = [calendar.attachment(convocation, "REQUEST", description=composed.subject)]
        try:
            fanout = send_one_per_patient(
                box,
                None,
                to=[address],
                subject=composed.subject,
                text=composed.text,
                attachments=[*standing, *invitation, *attachments],
                **common,
            )
        except DeliveryRefused as refusal:
            if len(patients) == 1:
                raise
            results.append(FanOutResult(refused=refusal.refused, refused_message_ids=refusal.message_ids))
            continue
        if convocation is not None:
            convocations.record_sent(convocation, None, fanout.primary.message)
        results.append(fanout)
    return results


def check_daily_limit(box: Mailbox, count: int) -> None:
    """`automation.sending.check_daily_limit` as a problem: `429 daily_limit_reached`, with the
    secretary's sentence and `Retry-After` up to the box's next local midnight."""
    try:
        automation_sending.check_daily_limit(box, count)
    except automation_sending.DailyLimitReached as exc:
        now = timezone.now()
        midnight = automation_sending.local_midnight(now) + datetime.timedelta(days=1)
        wait = max(int((midnight - now).total_seconds()), 1)
        raise Problem(
            "daily_limit_reached",
            exc.message,
            extra={"remaining_today": exc.remaining, "daily_limit": settings.AUTOMATION_DAILY_LIMIT},
            headers={"Retry-After": str(wait)},
        ) from None


def appointment(values: dict) -> datetime.datetime:
    """The appointment of a convocation model's `fields` (`date_rdv`, `heure_rdv`), in the
    formats a list takes (14/06/2027 or 2027-06-14; 09:30, 9h30, 9 h), to come."""
    try:
        starts_at = convocations.parse_appointment(values.get("date_rdv", ""), values.get("heure_rdv", ""))
        convocations.check_upcoming(starts_at)
    except convocations.InvalidAppointment as exc:  # a past moment (`PastAppointment`) included
        raise Problem("validation_error", extra={"errors": {"fields": [str(exc)]}}) from None
    return starts_at


def refusal_without_patient(address: str) -> Decision:
    """The patient policy's refusal of a patient address that no patient holds: a wrong INS
    key, else no space at this address (as the delivery path would refuse it)."""
    if address.lower() != policy.test_address() and ins_error(policy.ins_of(address)):
        return policy.refuse_wrong_ins()
    return policy.space_decision(None)


def refused(refusal: DeliveryRefused) -> Problem:
    recipients = [refused_outcome(a, d, refusal.message_ids.get(a)) for a, d in refusal.refused.items()]
    if 400 <= refusal.smtp_code < 500:
        return Problem(
            "temporarily_refused", refusal.reason, extra={"recipients": recipients}, headers={"Retry-After": "60"}
        )
    code = refusal.code if refusal.code in known_codes() else "refused"
    return Problem(code, refusal.reason, extra={"recipients": recipients})


def refused_outcome(address: str, decision: Decision, message_id: str | None) -> dict:
    """A recipient refused whole (no copy stored for them): `message` null, and `message_id` the
    Message-ID of the copy that was refused, which its automatic return names in `In-Reply-To`
    (null when no copy was written: a message model to an address without a patient)."""
    return {
        "address": address,
        "outcome": "refused",
        "code": decision.code,
        "reason": str(decision.reason or refusal_text(decision.code, address)),
        "message": None,
        "message_id": message_id or None,
    }


def known_codes():
    from api.problems import CATALOGUE

    return CATALOGUE


def outcomes(result: DeliveryResult) -> list[dict]:
    """Each recipient of a stored message, with that message (`message`, `message_id`)."""
    copy = {"message": result.message.pk, "message_id": result.message.message_id}
    rows = [{"address": box.address, "outcome": "delivered", **copy} for box in result.delivered]
    rows += [{"address": address, "outcome": "queued", **copy} for address in result.queued]
    rows += [
        {
            "address": a,
            "outcome": "refused",
            "code": d.code,
            "reason": str(d.reason or refusal_text(d.code, a)),
            **copy,
        }
        for a, d in result.refused.items()
    ]
    return rows


def answer(fanouts: list[FanOutResult], box: Mailbox) -> dict:
    messages = []
    refused_only = []
    for fanout in fanouts:
        for result in fanout.results:
            messages.append(
                {"id": result.message.pk, "message_id": result.message.message_id, "recipients": outcomes(result)}
            )
        # Every refusal of the fan-out, also those of copies that were refused whole (a patient
        # among several: closed space, wrong INS key, no such patient) and so have no message
        # above: the caller learns of each address it sent to, and of the Message-ID the
        # refused copy had, which its automatic return names.
        refused_only += [refused_outcome(a, d, fanout.refused_message_ids.get(a)) for a, d in fanout.refused.items()]
    if not messages:
        raise Problem("refused", "Aucun destinataire n'a accepté le message.", extra={"recipients": refused_only})
    seen, recipients = set(), []
    for item in [r for m in messages for r in m["recipients"]] + refused_only:
        if item["address"] not in seen:
            seen.add(item["address"])
            recipients.append(item)
    first = messages[0]
    # Kept on the answered message, so that `GET /messages/{id}` tells what this answer tells.
    keep_recipients(next(r.message for f in fanouts for r in f.results), fanouts)
    # The copies refused whole are reported to the box's webhooks too (no delivery event does).
    hooks.queue_refused_copies(box.pk, first["id"], [r for r in recipients if r["message"] is None])
    return {"id": first["id"], "message_id": first["message_id"], "recipients": recipients, "messages": messages}


def max_request_bytes() -> int:
    return settings.API_MAX_REQUEST_BYTES
