"""What an IMAP session reads and changes in the store (synchronous ORM; the server runs these in
its thread pool). The same boxes, folders, entries and flags as the webmail:

- the boxes are the webmail's (`webmail.selectors.pro_mailboxes`, from `mailboxes.access`):
  patient boxes are never reachable over IMAP; the personal namespace is one box (the one named at login, else
  the user's nominative box, else their first box), the others appear under
  `IMAP_SHARED_PREFIX/<address>/` (RFC 2342 shared namespace);
- flags are the entry's columns (seen, answered, flagged, is_draft, forwarded, imap_deleted);
- moving, deleting for good and folder changes go through `webmail.organise` (one home for
  those rules and their audit events); reading a message's text leaves a `message.read` event.

APPEND files a message in a folder without delivering it (like a webmail draft): the bytes are
stored by content hash, the Message and its Attachments parsed by `mailboxes.mime`. An APPEND to
Sent of a message the box itself sent (same Message-ID) is folded onto the copy the delivery
path already filed there, and an APPEND of bytes already in the box moves that entry instead of
making a second copy (a client re-filing a message it moved offline).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from audit.models import AuditEvent
from clients.imap.uids import assign_uids
from mailboxes.mime import MalformedMessage, parse_message
from mailboxes.models import Attachment, Entry, Folder, Mailbox, Message
from mailboxes.reading import Opened, record_opening
from mailboxes.store import read_raw, store_attachment, store_raw
from webmail import organise
from webmail.quota import quota_usage
from webmail.selectors import pro_mailboxes

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT, FORWARDED = 1, 2, 4, 8, 16, 32
FLAGS = [
    ("\\Seen", SEEN, "seen"),
    ("\\Answered", ANSWERED, "answered"),
    ("\\Flagged", FLAGGED, "flagged"),
    ("\\Deleted", DELETED, "imap_deleted"),
    ("\\Draft", DRAFT, "is_draft"),
    ("$Forwarded", FORWARDED, "forwarded"),
]
FLAG_BITS = {name.lower(): bit for name, bit, _ in FLAGS}
FLAG_FIELDS = [column for _, _, column in FLAGS]
SPECIAL_USE = {
    Folder.Role.SENT: "\\Sent",
    Folder.Role.DRAFTS: "\\Drafts",
    Folder.Role.TRASH: "\\Trash",
    Folder.Role.ARCHIVE: "\\Archive",
}
DELIMITER = "/"
CHUNK = 900


class Refused(Exception):
    """A command the rules refuse: answered `NO [code] text`."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.text = text
        self.code = code


def bits_of(entry_values) -> int:
    return sum(bit for (_, bit, _), value in zip(FLAGS, entry_values, strict=True) if value)


def flag_names(bits: int) -> list[str]:
    return [name for name, bit, _ in FLAGS if bits & bit]


# --- the account: boxes and folders -----------------------------------------------------------


@dataclass(frozen=True)
class Box:
    id: int
    address: str
    kind: str
    prefix: str  # "" for the personal namespace, else "<shared prefix>/<address>/"


@dataclass(frozen=True)
class FolderInfo:
    id: int
    mailbox_id: int
    role: str
    name: str  # the IMAP name (Unicode; modified UTF-7 on the wire)
    box_address: str

    @property
    def special_use(self) -> str | None:
        return SPECIAL_USE.get(self.role)


@dataclass
class Account:
    user: object
    boxes: list[Box] = field(default_factory=list)

    @property
    def box_ids(self) -> list[int]:
        return [b.id for b in self.boxes]


def reachable_boxes(user):
    """The boxes a user reaches over IMAP: exactly the webmail's (never a patient box)."""
    return pro_mailboxes(user)


def open_account(user, primary: str = "") -> Account:
    boxes = list(reachable_boxes(user).values_list("id", "address", "kind"))
    primary = (primary or "").strip().lower()
    chosen = next((b for b in boxes if b[1] == primary), None)
    if chosen is None:
        chosen = next((b for b in boxes if b[2] == Mailbox.Kind.NOMINATIVE), None) or (boxes[0] if boxes else None)
    shared = settings.IMAP_SHARED_PREFIX
    return Account(
        user=user,
        boxes=[
            Box(pk, address, kind, "" if (pk, address, kind) == chosen else f"{shared}/{address}/")
            for pk, address, kind in boxes
        ],
    )


def with_new_boxes(account: Account) -> Account:
    """The account with the boxes its user was given since it was opened (a membership an
    administrator added), each under the shared prefix; the boxes it shows keep their names, so
    a selected folder is not renamed under the client. Asked at each LIST: a client sees a new
    box when it next lists its folders, as it sees a lost one go (`session.check_access`)."""
    shared = settings.IMAP_SHARED_PREFIX
    rows = reachable_boxes(account.user).exclude(pk__in=account.box_ids).values_list("id", "address", "kind")
    added = [Box(pk, address, kind, f"{shared}/{address}/") for pk, address, kind in rows]
    return Account(account.user, account.boxes + added) if added else account


def list_folders(account: Account) -> list[FolderInfo]:
    prefixes = {b.id: b for b in account.boxes}
    out = []
    rows = Folder.objects.filter(mailbox_id__in=list(prefixes)).order_by("position", "name")
    for folder in rows.values("id", "mailbox_id", "role", "name"):
        box = prefixes[folder["mailbox_id"]]
        local = "INBOX" if folder["role"] == Folder.Role.INBOX else folder["name"]
        out.append(FolderInfo(folder["id"], box.id, folder["role"], box.prefix + local, box.address))
    order = {b.id: i for i, b in enumerate(sorted(account.boxes, key=lambda b: (b.prefix != "", b.address)))}
    out.sort(key=lambda f: (order[f.mailbox_id], f.role != Folder.Role.INBOX))
    return out


def find_folder(account: Account, name: str) -> FolderInfo | None:
    wanted = normalise_name(name)
    for folder in list_folders(account):
        if normalise_name(folder.name) == wanted:
            return folder
    return None


def normalise_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 3501 §5.1), alone or as the last level of a shared box."""
    parts = name.split(DELIMITER)
    if parts[-1].upper() == "INBOX":
        parts[-1] = "INBOX"
    return DELIMITER.join(parts)


def box_for_new_folder(account: Account, name: str) -> tuple[Box, str]:
    """The box a CREATE names (the personal one, or a shared one by its prefix) and the folder's
    name in that box."""
    for box in sorted(account.boxes, key=lambda b: -len(b.prefix)):
        if box.prefix and name.startswith(box.prefix):
            return box, name[len(box.prefix) :]
    personal = next((b for b in account.boxes if not b.prefix), None)
    if personal is None or name.startswith(settings.IMAP_SHARED_PREFIX + DELIMITER):
        raise Refused("Ce nom ne désigne aucune boîte aux lettres.", "CANNOT")
    return personal, name


def refuse_reserved(local: str) -> None:
    """The IMAP side of a folder's name: none (the personal namespace itself), or an empty level
    ("a//b", "/a"). The other rules, INBOX in any case included, are the webmail's
    (`organise`), which every way in shares."""
    if not local:
        raise Refused("Ce dossier existe déjà.", "ALREADYEXISTS")
    if "" in local.split(DELIMITER):
        raise Refused("Un nom de dossier n'a pas de niveau vide.", "CANNOT")


def create_folder(account: Account, name: str) -> None:
    box, local = box_for_new_folder(account, name.rstrip(DELIMITER))
    refuse_reserved(local)
    try:
        organise.create_folder(Mailbox.objects.get(pk=box.id), local)
    except ValidationError as exc:
        raise _name_refused(exc) from None


def delete_folder(account: Account, folder: FolderInfo) -> None:
    if folder.role != Folder.Role.USER:
        raise Refused("Les dossiers du système ne se suppriment pas.", "CANNOT")
    organise.delete_folder(Folder.objects.select_related("mailbox").get(pk=folder.id), account.user)


def rename_folder(account: Account, folder: FolderInfo, new_name: str) -> None:
    box, local = box_for_new_folder(account, new_name)
    if box.id != folder.mailbox_id:
        raise Refused("Un dossier ne change pas de boîte aux lettres.", "CANNOT")
    if folder.role != Folder.Role.USER:
        raise Refused("Les dossiers du système ne se renomment pas.", "CANNOT")
    local = local.rstrip(DELIMITER)
    refuse_reserved(local)
    try:
        organise.rename_folder(Folder.objects.select_related("mailbox").get(pk=folder.id), local)
    except ValidationError as exc:
        raise _name_refused(exc) from None


def _name_refused(exc: ValidationError) -> Refused:
    """A folder name the webmail's rules refuse: ALREADYEXISTS only when another folder has it
    (RFC 5530), CANNOT otherwise (empty, too long, a control character)."""
    taken = any(error.code == "taken" for error in exc.error_list)
    return Refused(" ".join(exc.messages), "ALREADYEXISTS" if taken else "CANNOT")


# --- snapshots and message data ------------------------------------------------------------


@dataclass
class Snapshot:
    uid_validity: int
    uid_next: int
    uids: list[int]
    flags: dict[int, int]


def snapshot(folder_id: int) -> Snapshot:
    uid_next, _given = assign_uids(folder_id)
    if not uid_next:  # the folder is gone
        return Snapshot(uid_validity=0, uid_next=0, uids=[], flags={})
    rows = (
        Entry.objects.filter(folder_id=folder_id, imap_uid__isnull=False)
        .order_by("imap_uid")
        .values_list("imap_uid", *FLAG_FIELDS)
    )
    uids = []
    flags = {}
    for row in rows.iterator(chunk_size=5000):
        uids.append(row[0])
        flags[row[0]] = bits_of(row[1:])
    return Snapshot(uid_validity=folder_id, uid_next=uid_next, uids=uids, flags=flags)


STATUS_ITEMS = frozenset({"MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "RECENT", "DELETED", "DELETED-STORAGE"})


def status(folder_id: int, items: frozenset[str] = STATUS_ITEMS) -> dict[str, int]:
    """The STATUS data items of a folder (RFC 3501 §6.3.10), with RFC 9208's DELETED (messages
    marked \\Deleted) and DELETED-STORAGE (what EXPUNGE would hand back to the quota, in octets:
    the sizes `release_space` gives back; §4.1.4 names the sum of the RFC822.SIZE, unlike STORAGE's
    1024-octet units) when asked."""
    uid_next, _given = assign_uids(folder_id)
    entries = Entry.objects.filter(folder_id=folder_id)
    values = {
        "MESSAGES": entries.count(),
        "UNSEEN": entries.filter(seen=False).count(),
        "UIDNEXT": uid_next,
        "UIDVALIDITY": folder_id,
        "RECENT": 0,
    }
    if items & {"DELETED", "DELETED-STORAGE"}:
        marked = entries.filter(imap_deleted=True).aggregate(count=Count("id"), size=Sum("message__size"))
        values["DELETED"] = marked["count"]
        values["DELETED-STORAGE"] = marked["size"] or 0
    return values


@dataclass(frozen=True)
class Meta:
    entry_id: int
    message_id: int
    raw_name: str
    size: int
    internaldate: datetime.datetime
    mailbox_id: int


def load_meta(folder_id: int, uids: list[int]) -> dict[int, Meta]:
    out = {}
    for start in range(0, len(uids), CHUNK):
        chunk = uids[start : start + CHUNK]
        rows = Entry.objects.filter(folder_id=folder_id, imap_uid__in=chunk).values_list(
            "imap_uid", "id", "message_id", "message__raw", "message__size", "received_at", "mailbox_id"
        )
        for uid, entry_id, message_id, raw_name, size, received_at, mailbox_id in rows:
            out[uid] = Meta(entry_id, message_id, raw_name, size, received_at, mailbox_id)
    return out


def read_message(meta: Meta) -> bytes:
    return read_raw(Message(raw=meta.raw_name))


def flags_of(folder_id: int, uids: list[int]) -> dict[int, int]:
    out = {}
    for start in range(0, len(uids), CHUNK):
        rows = Entry.objects.filter(folder_id=folder_id, imap_uid__in=uids[start : start + CHUNK]).values_list(
            "imap_uid", *FLAG_FIELDS
        )
        out.update({row[0]: bits_of(row[1:]) for row in rows})
    return out


def store_flags(folder_id: int, uids: list[int], mode: str, bits: int) -> dict[int, int]:
    """STORE: `mode` is "+", "-" or "=" (RFC 3501 §6.4.6). Returns the new flags of those UIDs."""
    with transaction.atomic():
        for start in range(0, len(uids), CHUNK):
            chunk = Entry.objects.filter(folder_id=folder_id, imap_uid__in=uids[start : start + CHUNK])
            if mode == "=":
                changes = {column: bool(bits & bit) for _, bit, column in FLAGS}
            else:
                changes = {column: mode == "+" for _, bit, column in FLAGS if bits & bit}
            if changes:
                chunk.update(**changes)
    return flags_of(folder_id, uids)


def record_reads(user, metas: list[Meta], mark_seen: bool, ip: str | None) -> None:
    """Reading a message's text over IMAP is a read (RULES.md §5): the seen flag unless the
    client peeked, who read it in shared boxes, one `message.read` event per entry."""
    opened = [Opened(m.entry_id, m.mailbox_id, m.message_id) for m in metas]
    record_opening(user, opened, ip=ip, via="imap", mark_seen=mark_seen)


# --- expunge, copy, move ---------------------------------------------------------------------


def _entries(folder_id: int, uids: list[int]) -> list[Entry]:
    out = []
    for start in range(0, len(uids), CHUNK):
        out += list(
            Entry.objects.filter(folder_id=folder_id, imap_uid__in=uids[start : start + CHUNK]).only(
                "id", "mailbox_id", "message_id", "folder_id", "imap_uid", *FLAG_FIELDS
            )
        )
    out.sort(key=lambda e: e.imap_uid)
    return out


def expunge(user, folder_id: int, uids: list[int] | None = None) -> list[int]:
    """Delete for good the entries marked \\Deleted (only those of `uids` for UID EXPUNGE)."""
    entries = Entry.objects.filter(folder_id=folder_id, imap_deleted=True, imap_uid__isnull=False)
    chosen = list(entries.only("id", "mailbox_id", "message_id", "imap_uid"))
    if uids is not None:
        wanted = set(uids)
        chosen = [e for e in chosen if e.imap_uid in wanted]
    organise.delete_entries(chosen, actor=user, actor_label="imap")
    return sorted(e.imap_uid for e in chosen)


def _target(source_folder_id: int, target: FolderInfo) -> Folder:
    folder = Folder.objects.get(pk=target.id)
    source_box = Folder.objects.filter(pk=source_folder_id).values_list("mailbox_id", flat=True).first()
    if folder.mailbox_id != source_box:
        raise Refused(
            "Un message ne passe pas d'une boîte aux lettres à une autre : transférez-le.",
            "CANNOT",
        )
    return folder


def move(user, folder_id: int, uids: list[int], target: FolderInfo) -> list[tuple[int, int]]:
    """MOVE (RFC 6851) within a box: the entries change folder and get UIDs there, in order.
    Returns (source UID, new UID) pairs for COPYUID."""
    folder = _target(folder_id, target)
    entries = _entries(folder_id, uids)
    if folder.pk == folder_id or not entries:
        return []
    with transaction.atomic():
        moved = organise.move_entries(entries, folder, user, actor_label="imap")
        _next, given = assign_uids(folder.pk, first=moved)
    return [(e.imap_uid, given[e.pk]) for e in entries if e.pk in given]


def copy(user, folder_id: int, uids: list[int], target: FolderInfo) -> list[tuple[int, int]]:
    """COPY within a box: a box holds a message once per entry, so the copy is a second Message
    row on the same stored bytes (and attachment files), entered in the target folder."""
    folder = _target(folder_id, target)
    entries = _entries(folder_id, uids)
    if not entries:
        return []
    with transaction.atomic():
        messages = {m.pk: m for m in Message.objects.filter(pk__in=[e.message_id for e in entries])}
        total = sum(messages[e.message_id].size for e in entries)
        _reserve_space(folder.mailbox_id, total)
        new_entries = []
        for entry in entries:
            clone = _clone_message(messages[entry.message_id])
            new_entries.append(
                Entry.objects.create(
                    mailbox_id=folder.mailbox_id,
                    message=clone,
                    folder=folder,
                    received_at=timezone.now(),
                    **{column: getattr(entry, column) for column in FLAG_FIELDS},
                )
            )
        _next, given = assign_uids(folder.pk, first=[e.pk for e in new_entries])
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(
                    action=AuditEvent.Action.COPIED,
                    actor=user,
                    actor_label="imap",
                    object_type="entry",
                    object_id=str(new.pk),
                    mailbox_id=folder.mailbox_id,
                    message_id=new.message_id,
                    detail={"from_entry": old.pk, "to_folder": folder.pk},
                )
                for old, new in zip(entries, new_entries, strict=True)
            ]
        )
    return [(old.imap_uid, given[new.pk]) for old, new in zip(entries, new_entries, strict=True) if new.pk in given]


def _copy_fields(instance, **changes) -> dict:
    """The concrete fields of a row (its primary key left out) for a new row, with `changes`."""
    fields = {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields if not f.primary_key}
    return {**fields, **changes}


def _clone_message(message: Message) -> Message:
    """A new Message row for the same bytes (a COPY to another box), and its attachments' rows;
    the search indexer writes the new message's document."""
    clone = Message.objects.create(**_copy_fields(message, search_pending=True))
    Attachment.objects.bulk_create(
        [Attachment(**_copy_fields(a, message_id=clone.pk)) for a in message.attachments.all()]
    )
    return clone


def _reserve_space(mailbox_id: int, size: int) -> None:
    """Count `size` bytes in the box, or refuse when it would go over its quota."""
    if size <= 0:
        return
    updated = Mailbox.objects.filter(pk=mailbox_id, used_bytes__lte=F("quota_bytes") - size).update(
        used_bytes=F("used_bytes") + size
    )
    if not updated:
        raise Refused("La boîte aux lettres est pleine.", "OVERQUOTA")


# --- append ----------------------------------------------------------------------------------


def append(user, target: FolderInfo, raw: bytes, bits: int, internaldate) -> tuple[int, int]:
    """APPEND (RFC 3501 §6.3.11, UIDPLUS): returns (UIDVALIDITY, UID)."""
    if len(raw) > settings.MAILBOX_MAX_MESSAGE_BYTES:
        raise Refused("Le message dépasse la taille maximale autorisée.", "TOOBIG")
    try:
        parsed = parse_message(raw)
    except MalformedMessage:
        raise Refused("Ce n'est pas un message électronique.", "CANNOT") from None
    sha256, name = store_raw(raw)
    with transaction.atomic():
        existing = _same_message(target, sha256, parsed.message_id)
        if existing is not None:
            return _refile(user, existing, target, bits)
        _reserve_space(target.mailbox_id, len(raw))
        message = Message.objects.create(
            message_id=parsed.message_id[:998],
            in_reply_to=parsed.in_reply_to[:998],
            references=" ".join(parsed.references),
            thread_key=(parsed.references[0] if parsed.references else parsed.message_id)[:998],
            from_address=parsed.from_address[:254],
            from_name=parsed.from_name[:300],
            reply_to=parsed.reply_to[:254],
            reply_to_name=parsed.reply_to_name[:300],
            to=parsed.to,
            cc=parsed.cc,
            subject=parsed.subject,
            date=parsed.date,
            text_body=parsed.text_body,
            html_body=parsed.html_body,
            mdn_requested_to=parsed.mdn_requested_to[:254],
            x_mss_headers=parsed.x_mss_headers,
            auto_submitted=parsed.auto_submitted,
            is_report=parsed.is_report,
            report_type=parsed.report_type,
            has_attachments=any(not a.is_inline for a in parsed.attachments),
            size=len(raw),
            sha256=sha256,
            raw=name,
            sender_mailbox_id=target.mailbox_id if target.role in (Folder.Role.SENT, Folder.Role.DRAFTS) else None,
        )
        rows = []
        for position, item in enumerate(parsed.attachments):
            digest, stored = store_attachment(item.data)
            rows.append(
                Attachment.from_part(
                    item, sha256=digest, file=stored, position=position, size=len(item.data), message=message
                )
            )
        Attachment.objects.bulk_create(rows)
        entry = Entry.objects.create(
            mailbox_id=target.mailbox_id,
            message=message,
            folder_id=target.id,
            received_at=internaldate or timezone.now(),
            **{column: bool(bits & bit) for _, bit, column in FLAGS},
        )
        _next, given = assign_uids(target.id, first=[entry.pk])
        AuditEvent.objects.create(
            action=AuditEvent.Action.APPENDED,
            actor=user,
            actor_label="imap",
            object_type="entry",
            object_id=str(entry.pk),
            mailbox_id=target.mailbox_id,
            message_id=message.pk,
            detail={"folder": target.id, "role": target.role},
        )
    return target.id, given[entry.pk]


def _same_message(target: FolderInfo, sha256: str, message_id: str) -> Entry | None:
    entries = Entry.objects.filter(mailbox_id=target.mailbox_id).select_related("folder")
    same_bytes = entries.filter(message__sha256=sha256).order_by("id").first()
    if same_bytes is not None:
        return same_bytes
    if target.role == Folder.Role.SENT and message_id:
        return (
            entries.filter(
                folder_id=target.id, message__message_id=message_id, message__sender_mailbox_id=target.mailbox_id
            )
            .order_by("id")
            .first()
        )
    return None


def _refile(user, entry: Entry, target: FolderInfo, bits: int) -> tuple[int, int]:
    if entry.folder_id != target.id:
        organise.move_entries([entry], Folder.objects.get(pk=target.id), user, actor_label="imap")
    changes = {column: True for _, bit, column in FLAGS if bits & bit and column != "imap_deleted"}
    if changes:
        Entry.objects.filter(pk=entry.pk).update(**changes)
    _next, given = assign_uids(target.id, first=[entry.pk])
    uid = given.get(entry.pk) or Entry.objects.filter(pk=entry.pk).values_list("imap_uid", flat=True).get()
    return target.id, uid


# --- quota (RFC 9208) ------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaRoot:
    """A box is one quota root, named by its address; its one resource is STORAGE."""

    name: str
    storage: tuple[int, int] | None  # (usage, limit) in units of 1024 octets; None: no quota


def quota_root(box: Box) -> QuotaRoot:
    """The box's quota as the webmail shows it (`webmail.quota.quota_usage`, the one home of the
    numbers), in RFC 9208's units."""
    mailbox = Mailbox.objects.only("id", "used_bytes", "quota_bytes").get(pk=box.id)
    usage = quota_usage(mailbox)
    return QuotaRoot(box.address, usage.storage_kib() if usage else None)


def find_quota_root(account: Account, name: str) -> Box | None:
    wanted = name.strip().lower()
    return next((b for b in account.boxes if b.address.lower() == wanted), None)


def folder_exists(folder_id: int) -> bool:
    return Folder.objects.filter(pk=folder_id).exists()


def still_reachable(user, folder: FolderInfo) -> bool:
    return reachable_boxes(user).filter(pk=folder.mailbox_id).exists()
