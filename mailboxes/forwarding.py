"""Automatic forwarding of a nominative box to another box of the trust space (RULES.md §6
"forwarding"; RULES.md §1: nothing leaves the trust space).

The message is passed on as received — the original bytes, unaltered, so the proof of who sent
it travels with it — under a block of `Resent-From`, `Resent-To`, `Resent-Date` and
`Resent-Message-ID` fields (RFC 5322 §3.6.6), with the box's address as envelope sender (a
non-delivery report comes back to the box). Without "keep a copy", the box's entry goes to its
trash once the forward is accepted (restorable until the trash is emptied), never before.

Loops: a report, a message the box sent itself, and a message that already carries a
`Resent-From` of a domain hosted here (forwarded by us once, or coming back from a forward) are
never forwarded, nor a message that has made more hops than SMTP_HOP_LIMIT (its `Received:`
fields: a loop through peers that drop the `Resent-*` block); the settings refuse a target that
forwards back to the box.
"""

from __future__ import annotations

import logging
import re
from email.utils import format_datetime, getaddresses, make_msgid

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from mailboxes.absence import stored_headers
from mailboxes.models import Entry, Folder, Forwarding, IncomingAction, Mailbox
from mailboxes.store import read_raw
from mailboxes.trust import InvalidAddress, classify_domains, domain_of, normalise_address

log = logging.getLogger(__name__)


def forward_target_error(mailbox: Mailbox, address: str) -> str:
    """The French reason why `mailbox` may not forward to `address`, or ""."""
    if mailbox.kind != Mailbox.Kind.NOMINATIVE:
        return _("Seule une boîte nominative peut transférer son courrier automatiquement.")
    try:
        target = normalise_address(address)
    except InvalidAddress:
        return _("« %(a)s » n'est pas une adresse de messagerie valide.") % {"a": (address or "")[:254]}
    if target == mailbox.address:
        return _("Une boîte ne peut pas transférer son courrier à elle-même.")
    domain = domain_of(target)
    kind = classify_domains({domain})[domain]
    if kind == "patient":
        return _(
            "Le transfert automatique ne va jamais vers une adresse patient : choisissez la boîte MSSanté "
            "d'un professionnel ou d'une structure."
        )
    if kind == "untrusted":
        return _(
            "Le domaine « %(d)s » n'appartient pas à l'espace de confiance MSSanté : le transfert automatique "
            "ne va que vers une autre boîte MSSanté (adresse en …mssante.fr d'un opérateur de confiance)."
        ) % {"d": domain}
    if kind == "hosted":
        target_box = Mailbox.objects.filter(address=target, is_active=True).exclude(kind=Mailbox.Kind.PATIENT).first()
        if target_box is None:
            return _("Aucune boîte aux lettres active ne porte l'adresse « %(a)s ».") % {"a": target}
        if Forwarding.objects.filter(mailbox=target_box, enabled=True, address=mailbox.address).exists():
            return _(
                "La boîte « %(a)s » transfère déjà son courrier vers la vôtre : le transfert tournerait en boucle."
            ) % {"a": target}
    return ""


def forwarded_here_before(headers) -> bool:
    """A `Resent-From` of a domain hosted here: we forwarded this message once already."""
    addresses = [a for _n, a in getaddresses([str(v) for v in headers.get_all("resent-from") or []]) if "@" in a]
    if not addresses:
        return False
    domains = {domain_of(a.lower()) for a in addresses}
    return any(kind == "hosted" for kind in classify_domains(domains).values())


def resent_block(box: Mailbox, target: str) -> bytes:
    fields = [
        ("Resent-From", box.address),
        ("Resent-To", target),
        ("Resent-Date", format_datetime(timezone.localtime())),
        ("Resent-Message-ID", make_msgid(domain=box.domain_name)),
    ]
    return "".join(f"{name}: {value}\r\n" for name, value in fields).encode("ascii")


RETURN_PATH_RE = re.compile(rb"^return-path:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)


def without_return_path(raw: bytes) -> bytes:
    """The stored bytes less the `Return-Path:` fields of their header block (the gateway's trace
    put one there at delivery): a server that sends a message on must not pass one along
    (RFC 5321 §4.4); the final delivery writes its own. The body is left as it is."""
    ends = [at + skip for at, skip in ((raw.find(b"\n\n"), 1), (raw.find(b"\r\n\r\n"), 2)) if at != -1]
    head = raw[: min(ends)] if ends else raw  # through the last field's line end
    cleaned = RETURN_PATH_RE.sub(b"", head)
    return raw if cleaned == head else cleaned + raw[len(head) :]


def forward_message(action: IncomingAction) -> str:
    """The task's work for one forward action (already claimed): returns the outcome code."""
    from mailboxes.delivery import DeliveryRefused, is_looping, send_message

    box, message = action.mailbox, action.message
    forwarding = Forwarding.objects.filter(mailbox=box, enabled=True).first()
    if forwarding is None:
        return "switched_off"
    if message.is_report or message.sender_mailbox_id == box.pk:
        return "own_message"
    headers = stored_headers(message)
    if forwarded_here_before(headers):
        return "already_forwarded"
    if is_looping(headers):
        return "looping"  # its copy would be refused as a loop (RFC 5321 §6.3): not sent at all
    error = forward_target_error(box, forwarding.address)
    if error:
        log.info("forward not sent: action=%s target no longer allowed", action.pk)
        return "target_refused"
    target = normalise_address(forwarding.address)
    raw = resent_block(box, target) + without_return_path(read_raw(message))
    with transaction.atomic():
        try:
            result = send_message(raw, envelope_from=box.address, envelope_to=[target], source="system")
        except DeliveryRefused as refusal:
            log.info("forward refused: action=%s code=%s", action.pk, refusal.code)
            return f"refused:{refusal.code}"[:60]
        record(
            AuditEvent.Action.AUTO_FORWARDED,
            actor_label="system",
            object_type="message",
            object_id=result.message.pk,
            mailbox_id=box.pk,
            message_id=message.pk,
            detail={"forward": result.message.pk, "action": action.pk, "kept": forwarding.keep_copy},
        )
        entries = Entry.objects.filter(mailbox=box, message=message)
        entries.update(forwarded=True)
        if not forwarding.keep_copy:
            trash = box.folders.filter(role=Folder.Role.TRASH).first()
            if trash is not None:
                entries.exclude(folder=trash).update(folder=trash, trashed_at=timezone.now(), seen=True)
    return "sent"


# --- Settings (the webmail's page calls this) --------------------------------------------------


def save_forwarding(mailbox: Mailbox, actor, *, enabled: bool, address: str, keep_copy: bool) -> Forwarding:
    """Validated by the caller with `forward_target_error` when enabled."""
    address = (address or "").strip()
    if address:
        try:
            address = normalise_address(address)
        except InvalidAddress:
            pass
    forwarding, _created = Forwarding.objects.update_or_create(
        mailbox=mailbox, defaults={"enabled": bool(enabled), "address": address[:254], "keep_copy": bool(keep_copy)}
    )
    record(
        AuditEvent.Action.BOX_SETTINGS_CHANGED,
        actor=actor,
        object_type="forwarding",
        object_id=forwarding.pk,
        mailbox_id=mailbox.pk,
        detail={"change": "forwarding", "enabled": forwarding.enabled, "keep_copy": forwarding.keep_copy},
    )
    return forwarding
