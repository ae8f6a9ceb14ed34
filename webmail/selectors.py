"""Read side of the webmail (RULES.md §1–2, issue 6 "three panes"): the boxes a professional
works on, their folders with unread counts, and one page of a folder's list by keyset.

Boxes and entries come through `mailboxes.access`; ids from the request are only looked up among
them. The number of SQL queries per page is constant: one for the boxes, one for the folders with
their unread counts, one for the page of entries with the size of each one's thread.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db import connections, router
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.http import Http404

from mailboxes.access import PRO_BOX_IDS_SQL, entry_for_user, mailbox_for_user, mailboxes_for_user
from mailboxes.models import Entry, Folder, Mailbox, Membership, Message
from mssante.links import link

PAGE_SIZE = 50
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

# What a row of the list needs, and nothing else (the bodies stay in the database).
LIST_FIELDS = (
    "id",
    "mailbox_id",
    "folder_id",
    "received_at",
    "seen",
    "flagged",
    "answered",
    "forwarded",
    "is_draft",
    "assigned_to_id",
    "done_at",
    "message__id",
    "message__from_address",
    "message__from_name",
    "message__subject",
    "message__has_attachments",
    "message__thread_key",
    "message__date",
)


def pro_mailboxes(user):
    """The boxes of the professional webmail: nominative, organisational, applicative."""
    return mailboxes_for_user(user).exclude(kind=Mailbox.Kind.PATIENT)


def pro_mailbox(user, mailbox_id) -> Mailbox:
    box = mailbox_for_user(user, mailbox_id)
    if box.kind == Mailbox.Kind.PATIENT:
        raise Http404("Boîte aux lettres introuvable")
    return box


def pro_entry(user, entry_id) -> Entry:
    entry = entry_for_user(user, entry_id)
    if entry.mailbox.kind == Mailbox.Kind.PATIENT:
        raise Http404("Message introuvable")
    return entry


def folder_of(mailbox: Mailbox, folder_id) -> Folder:
    try:
        return mailbox.folders.get(pk=int(folder_id))
    except (Folder.DoesNotExist, TypeError, ValueError):
        raise Http404("Dossier introuvable") from None


def can_manage(user, mailbox: Mailbox) -> bool:
    """Owner of a nominative box, manager (or responsible professional) of a shared one."""
    if mailbox.kind == Mailbox.Kind.NOMINATIVE:
        return mailbox.owner is not None and mailbox.owner.user_id == user.pk
    if mailbox.responsible_id and getattr(mailbox.responsible, "user_id", None) == user.pk:
        return True
    return Membership.objects.filter(mailbox=mailbox, user=user, role=Membership.Role.MANAGER).exists()


@dataclass
class FolderNode:
    folder: Folder
    unread: int = 0
    url: str = ""


@dataclass
class BoxNode:
    mailbox: Mailbox
    folders: list[FolderNode] = field(default_factory=list)
    unread: int = 0
    url: str = ""
    kind_label: str = ""
    folder_create_url: str = ""
    signature_url: str = ""


_NAV_FOLDER_FIELDS = tuple(f.attname for f in Folder._meta.concrete_fields)
_NAV_BOX_FIELDS = tuple(f.attname for f in Mailbox._meta.concrete_fields)


def navigation_rows(user, *, counts: bool = True):
    """The folders of every box the user reaches (`mailboxes.access`, decided by the database
    on each request), each with its unread count (0 without `counts`) and its box's fields, in
    one query."""
    unread = RawSQL(UNREAD_SQL if counts else "0", ())  # noqa: S611 - a constant, no parameter
    return (
        Folder.objects.filter(mailbox__in=pro_mailboxes(user).values("pk"))
        .annotate(unread=unread)
        .order_by("mailbox__kind", "mailbox__address", "position", "name")
        .values_list(*_NAV_FOLDER_FIELDS, "unread", *(f"mailbox__{name}" for name in _NAV_BOX_FIELDS))
    )


def navigation(user, *, counts: bool = True) -> list[BoxNode]:
    """The left pane: each box the user reaches (`mailboxes.access`) with its folders and their
    unread counts (correlated subqueries on the partial index of unread entries, migration 0002).
    One query: on PostgreSQL the constant `NAVIGATION_SQL`, which holds the access rule as
    `mailboxes.access` writes it (`PRO_BOX_IDS_SQL`); elsewhere the ORM's `navigation_rows`.
    Without `counts` (a page that shows none: the list pane alone) every count is 0 and the
    database counts nothing."""
    if not getattr(user, "is_authenticated", False):
        return []
    using = router.db_for_read(Folder)
    width = len(_NAV_FOLDER_FIELDS)
    nodes: dict[int, BoxNode] = {}
    if connections[using].vendor == "postgresql":
        with connections[using].cursor() as cursor:
            cursor.execute(NAVIGATION_SQL if counts else NAVIGATION_SQL_WITHOUT_COUNTS, [user.pk, user.pk])
            rows = cursor.fetchall()
    else:
        rows = navigation_rows(user, counts=counts).using(using)
    for values in rows:
        folder = Folder.from_db(using, _NAV_FOLDER_FIELDS, values[:width])
        unread = values[width]
        node = nodes.get(folder.mailbox_id)
        if node is None:
            mailbox = Mailbox.from_db(using, _NAV_BOX_FIELDS, values[width + 1 :])
            node = nodes[folder.mailbox_id] = BoxNode(
                mailbox=mailbox,
                url=link("webmail:mailbox", mailbox.pk),
                kind_label=mailbox.get_kind_display(),
                folder_create_url=link("webmail:folder_create", mailbox.pk),
                signature_url=link("webmail:signature", mailbox.pk),
            )
        folder.mailbox = node.mailbox
        folder.unread = unread
        node.folders.append(
            FolderNode(folder=folder, unread=unread, url=link("webmail:folder", folder.mailbox_id, folder.pk))
        )
        if folder.role == Folder.Role.INBOX:
            node.unread = unread
    return list(nodes.values())


def _navigation_sql(unread: str) -> str:
    """`navigation_rows` as one statement written once: the folders of the boxes
    `mailboxes.access.PRO_BOX_IDS_SQL` gives the user, the same columns and order
    (bench/RESULTS.md, issue 13: compiling it was a good part of the page); `unread` is the
    count's SQL."""
    folder_columns = [f'mailboxes_folder."{Folder._meta.get_field(n).column}"' for n in _NAV_FOLDER_FIELDS]
    box_columns = [f'mailboxes_mailbox."{Mailbox._meta.get_field(n).column}"' for n in _NAV_BOX_FIELDS]
    return (
        f"SELECT {', '.join(folder_columns)}, ({unread}) AS unread, {', '.join(box_columns)} "  # noqa: S608 - columns and constants
        "FROM mailboxes_folder JOIN mailboxes_mailbox ON mailboxes_mailbox.id = mailboxes_folder.mailbox_id "
        f"WHERE mailboxes_folder.mailbox_id IN ({PRO_BOX_IDS_SQL}) ORDER BY mailboxes_mailbox.kind, "
        "mailboxes_mailbox.address, mailboxes_folder.position, mailboxes_folder.name"
    )


def locate(nav: list[BoxNode], mailbox_id, folder_id=None) -> tuple[Mailbox, Folder]:
    """The box (and folder, else its inbox) from the navigation already loaded: the boxes there
    come from `mailboxes.access`, so an id that is not in it is a 404."""
    try:
        mailbox_id = int(mailbox_id)
        folder_id = int(folder_id) if folder_id is not None else None
    except (TypeError, ValueError):
        raise Http404("Boîte aux lettres introuvable") from None
    for node in nav:
        if node.mailbox.pk == mailbox_id:
            for item in node.folders:
                if (folder_id is None and item.folder.role == Folder.Role.INBOX) or item.folder.pk == folder_id:
                    return node.mailbox, item.folder
            raise Http404("Dossier introuvable")
    raise Http404("Boîte aux lettres introuvable")


def encode_cursor(entry: Entry) -> str:
    delta = entry.received_at - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}-{entry.pk}"


def decode_cursor(value: str | None):
    if not value:
        return None
    try:
        micros, pk = value.split("-", 1)
        return EPOCH + datetime.timedelta(microseconds=int(micros)), int(pk)
    except (ValueError, OverflowError):
        return None


@dataclass
class Row:
    entry: Entry
    thread_size: int = 1
    child: bool = False  # a later message of a thread already shown higher on the page
    # What the cells show (texts, marks, badges, dates), set by webmail.rows.prepare.
    cells: dict = field(default_factory=dict)


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None
    prev_cursor: str | None
    is_first: bool


def older_than(key) -> RawSQL:
    """Entries before the cursor `key` (received_at, id), as a row comparison: PostgreSQL walks
    the (folder, -received_at, -id) index from it."""
    return RawSQL(KEYSET_SQL["after"], list(key), output_field=BooleanField())  # noqa: S611 - a constant


def newer_than(key) -> RawSQL:
    return RawSQL(KEYSET_SQL["before"], list(key), output_field=BooleanField())  # noqa: S611 - a constant


def keyset(queryset, *, after: str | None = None, before: str | None = None, size: int = PAGE_SIZE):
    """Newest first, `size` entries after (older than) or before (newer than) a cursor.

    The row comparison `(received_at, id) < (t, i)` lets PostgreSQL walk the
    (folder, -received_at, -id) index from the cursor: a deep page costs what the first does.
    """
    after_key, before_key = decode_cursor(after), decode_cursor(before)
    # Raw parameters are not adapted by the ORM: give the database its own datetime format.
    adapt = connections[queryset.db].ops.adapt_datetimefield_value
    after_key = (adapt(after_key[0]), after_key[1]) if after_key else None
    before_key = (adapt(before_key[0]), before_key[1]) if before_key else None
    qs = queryset
    if before_key:
        qs = qs.filter(newer_than(before_key)).order_by("received_at", "id")
    else:
        if after_key:
            qs = qs.filter(older_than(after_key))
        qs = qs.order_by("-received_at", "-id")
    entries = list(qs[: size + 1])
    more = len(entries) > size
    entries = entries[:size]
    if before_key:
        entries.reverse()
        has_newer, has_older = more, True
    else:
        has_newer, has_older = bool(after_key), more
    return entries, has_newer, has_older


# Correlated subqueries written once as SQL: building them with the ORM cost more per page than
# running them (they read the thread_key index and the partial unread index).
THREAD_SIZE_SQL = (
    "CASE WHEN mailboxes_message.thread_key = '' THEN 1 ELSE (SELECT COUNT(*) FROM mailboxes_entry ts_e "
    "JOIN mailboxes_message ts_m ON ts_m.id = ts_e.message_id WHERE ts_e.mailbox_id = mailboxes_entry.mailbox_id "
    "AND ts_m.thread_key = mailboxes_message.thread_key) END"
)
UNREAD_SQL = "SELECT COUNT(*) FROM mailboxes_entry ur WHERE ur.folder_id = mailboxes_folder.id AND NOT ur.seen"


def with_thread_size(queryset):
    """Each entry with the number of entries of its thread in its box, in the same query
    (the queryset joins mailboxes_message, by select_related)."""
    return queryset.annotate(thread_size=RawSQL(THREAD_SIZE_SQL, ()))  # noqa: S611 - a constant


def list_entries(mailbox: Mailbox, folder: Folder | None = None):
    qs = Entry.objects.filter(mailbox=mailbox)
    fields = LIST_FIELDS
    if folder is not None:
        qs = qs.filter(folder=folder)
        if folder.role in (Folder.Role.SENT, Folder.Role.DRAFTS):
            fields = (*LIST_FIELDS, "message__to")  # the list shows the recipients there
    return with_thread_size(qs.select_related("message").only(*fields))


def page_of(queryset, mailbox: Mailbox, *, after=None, before=None, size=PAGE_SIZE) -> Page:
    entries, has_newer, has_older = keyset(queryset, after=after, before=before, size=size)
    return make_page(entries, has_newer, has_older)


# What a folder's page reads, in the models' field order (`from_db` wants them so).
_PAGE_WANTED = {name.removeprefix("message__") for name in LIST_FIELDS if name.startswith("message__")}
_PAGE_ENTRY_FIELDS = tuple(f.attname for f in Entry._meta.concrete_fields if f.attname in {*LIST_FIELDS, "message_id"})
_PAGE_MESSAGE_FIELDS = {
    with_to: tuple(
        f.attname for f in Message._meta.concrete_fields if f.attname in _PAGE_WANTED | ({"to"} if with_to else set())
    )
    for with_to in (False, True)
}
KEYSET_SQL = {
    "after": "(mailboxes_entry.received_at, mailboxes_entry.id) < (%s, %s)",
    "before": "(mailboxes_entry.received_at, mailboxes_entry.id) > (%s, %s)",
}


NAVIGATION_SQL = _navigation_sql(UNREAD_SQL)
NAVIGATION_SQL_WITHOUT_COUNTS = _navigation_sql("0")


def _page_sql(with_to: bool, keyset: str | None) -> str:
    """The SQL of a folder's page, written once: the same columns, join, filter and order as
    the ORM query of `list_entries` + `keyset` (one row more than the page tells if there is
    another). A constant read through `cursor.execute`: no query compiled per request."""
    entry_columns = [f'mailboxes_entry."{Entry._meta.get_field(name).column}"' for name in _PAGE_ENTRY_FIELDS]
    message_columns = [
        f'mailboxes_message."{Message._meta.get_field(n).column}"' for n in _PAGE_MESSAGE_FIELDS[with_to]
    ]
    where = f" AND {KEYSET_SQL[keyset]}" if keyset else ""
    order = "ASC" if keyset == "before" else "DESC"
    return (
        f"SELECT {', '.join(entry_columns + message_columns)}, ({THREAD_SIZE_SQL}) AS thread_size "  # noqa: S608 - model columns and constants only, built at import
        "FROM mailboxes_entry JOIN mailboxes_message ON mailboxes_message.id = mailboxes_entry.message_id "
        f"WHERE mailboxes_entry.mailbox_id = %s AND mailboxes_entry.folder_id = %s{where} "
        f"ORDER BY mailboxes_entry.received_at {order}, mailboxes_entry.id {order} LIMIT %s"
    )


PAGE_SQL = {
    (with_to, keyset): _page_sql(with_to, keyset) for with_to in (False, True) for keyset in (None, *KEYSET_SQL)
}


def folder_page(mailbox: Mailbox, folder: Folder, *, after=None, before=None, size=PAGE_SIZE) -> Page:
    """One page of a folder (newest first, keyset on (received_at, id)): the same rows as
    `page_of(list_entries(mailbox, folder), ...)`, in one query. `mailbox` and `folder` come
    from `locate` (the navigation, `mailboxes.access`). On PostgreSQL the query is the constant
    `PAGE_SQL` (bench/RESULTS.md, issue 13: compiling it was a good part of the list's time)."""
    using = router.db_for_read(Entry)
    after_key, before_key = decode_cursor(after), decode_cursor(before)
    with_to = folder.role in (Folder.Role.SENT, Folder.Role.DRAFTS)  # the list shows the recipients there
    message_fields = _PAGE_MESSAGE_FIELDS[with_to]
    if connections[using].vendor == "postgresql":
        rows = _page_rows_sql(using, mailbox, folder, with_to, after_key, before_key, size)
    else:
        rows = _page_rows_orm(using, mailbox, folder, message_fields, after_key, before_key, size)
    width, end = len(_PAGE_ENTRY_FIELDS), len(_PAGE_ENTRY_FIELDS) + len(message_fields)
    entries = []
    for values in rows:
        entry = Entry.from_db(using, _PAGE_ENTRY_FIELDS, values[:width])
        entry.message = Message.from_db(using, message_fields, values[width:end])
        entry.thread_size = values[end]
        entries.append(entry)
    more = len(entries) > size
    entries = entries[:size]
    if before_key:
        entries.reverse()
        return make_page(entries, more, True)
    return make_page(entries, bool(after_key), more)


def _page_rows_sql(using, mailbox, folder, with_to, after_key, before_key, size) -> list[tuple]:
    connection = connections[using]
    keyset = "before" if before_key else "after" if after_key else None
    key = list(before_key or after_key or ())
    with connection.cursor() as cursor:
        cursor.execute(PAGE_SQL[with_to, keyset], [mailbox.pk, folder.pk, *key, size + 1])
        rows = cursor.fetchall()
    if with_to:  # JSON arrives as text from Django's PostgreSQL backend: the field decodes it
        to, at = Message._meta.get_field("to"), len(_PAGE_ENTRY_FIELDS) + _PAGE_MESSAGE_FIELDS[True].index("to")
        rows = [(*row[:at], to.from_db_value(row[at], None, connection), *row[at + 1 :]) for row in rows]
    return rows


def _page_rows_orm(using, mailbox, folder, message_fields, after_key, before_key, size):
    adapt = connections[using].ops.adapt_datetimefield_value
    rows = Entry.objects.using(using).filter(mailbox_id=mailbox.pk, folder_id=folder.pk)
    if before_key:
        rows = rows.filter(newer_than((adapt(before_key[0]), before_key[1]))).order_by("received_at", "id")
    else:
        if after_key:
            rows = rows.filter(older_than((adapt(after_key[0]), after_key[1])))
        rows = rows.order_by("-received_at", "-id")
    fields = (*_PAGE_ENTRY_FIELDS, *(f"message__{name}" for name in message_fields), "thread_size")
    return with_thread_size(rows).values_list(*fields)[: size + 1]


def make_page(entries: list[Entry], has_newer: bool, has_older: bool) -> Page:
    return Page(
        rows=group_threads(entries),
        next_cursor=encode_cursor(entries[-1]) if entries and has_older else None,
        prev_cursor=encode_cursor(entries[0]) if entries and has_newer else None,
        is_first=not has_newer,
    )


def group_threads(entries: list[Entry]) -> list[Row]:
    """Keep the page's order by date, but put the later messages of a thread right under the
    first one shown; `thread_size` comes annotated with the page's query."""
    groups: dict[str, list[Row]] = {}
    ordered: list[list[Row]] = []
    for entry in entries:
        key = entry.message.thread_key or f"#{entry.pk}"
        row = Row(entry=entry, thread_size=getattr(entry, "thread_size", None) or 1)
        if key in groups:
            row.child = True
            groups[key].append(row)
        else:
            groups[key] = [row]
            ordered.append(groups[key])
    return [row for group in ordered for row in group]


def thread_of(entry: Entry) -> list[Entry]:
    """The other messages of the same thread in the same box, oldest first."""
    key = entry.message.thread_key
    if not key:
        return []
    return list(
        Entry.objects.filter(mailbox_id=entry.mailbox_id, message__thread_key=key)
        .exclude(pk=entry.pk)
        .select_related("message")
        .only(
            "id",
            "received_at",
            "seen",
            "folder_id",
            "message__from_address",
            "message__from_name",
            "message__subject",
            "message__date",
        )
        .order_by("received_at", "id")[:50]
    )


def next_in_folder(entry: Entry) -> Entry | None:
    """The message the list shows after `entry` (the next older one in its folder), else the one
    before it: where archiving or deleting from the reading pane goes next (issue 16 item 14)."""
    same_folder = Entry.objects.filter(folder_id=entry.folder_id, is_draft=False).exclude(pk=entry.pk).only("id")
    key = (entry.received_at, entry.pk)
    older = (
        same_folder.filter(Q(received_at__lt=key[0]) | Q(received_at=key[0], pk__lt=key[1]))
        .order_by("-received_at", "-id")
        .first()
    )
    if older is not None:
        return older
    return (
        same_folder.filter(Q(received_at__gt=key[0]) | Q(received_at=key[0], pk__gt=key[1]))
        .order_by("received_at", "id")
        .first()
    )


def newest_in_folder(folder: Folder) -> str:
    """The keyset cursor of the folder's newest message ("" when empty): the list's first row, so
    a page can tell that new mail arrived without reloading anything."""
    newest = Entry.objects.filter(folder_id=folder.pk).order_by("-received_at", "-id").only("id", "received_at").first()
    return encode_cursor(newest) if newest is not None else ""
