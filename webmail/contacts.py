"""Contacts (issue 16 item 19): a personal address book per professional, and a shared one per
organisational box, filled from the mail exchanged and editable by hand.

- The personal book is filled from the person's nominative boxes; a shared book from its box.
  A received message gives its sender, a sent message its recipients (To and Cc). Reports and
  automatic mail (`Auto-Submitted`), system senders and the boxes themselves give nothing.
- Filling reads the entries after the book's watermark (`filled_up_to`), by batches, under a
  lock of the book row: when the compose or contacts page opens and every few minutes (Celery
  beat, `webmail.fill_address_books`). A contact the user removed stays hidden: mail does not
  bring it back.
- `search_contacts(user, term)` is what the recipient completion calls, beside the directory:
  both books, name or address, ignoring case and accents, most exchanged first.

Every book and contact is reached through `book_for_user` / `contact_for_user` (404 otherwise).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404
from django.utils.translation import gettext as _

from mailboxes.access import mailboxes_for_user
from mailboxes.box_rules import fold
from mailboxes.models import Entry, Mailbox
from mailboxes.patient_domain import is_patient_address
from mailboxes.trust import InvalidAddress, classify_domains, domain_of, normalise_address
from webmail.models import AddressBook, Contact

BATCH = 2000
MAX_BATCHES_PER_CALL = 5
SYSTEM_LOCAL_PART_RE = re.compile(r"^(mailer-daemon|postmaster|.*no-?reply.*|ne-pas-repondre.*)$")


# --- Books -------------------------------------------------------------------------------------


def _boxes(user):
    return list(mailboxes_for_user(user).filter(kind__in=[Mailbox.Kind.NOMINATIVE, Mailbox.Kind.ORGANISATIONAL]))


def books_for_user(user) -> list[AddressBook]:
    """The person's own book first, then the shared books of their organisational boxes
    (created on first use)."""
    if not getattr(user, "is_authenticated", False):
        return []
    boxes = _boxes(user)
    books = [AddressBook.objects.get_or_create(owner=user)[0]]
    for box in boxes:
        if box.kind == Mailbox.Kind.ORGANISATIONAL:
            book, _created = AddressBook.objects.get_or_create(mailbox=box)
            book.mailbox = box
            books.append(book)
    return books


def book_for_user(user, book_id) -> AddressBook:
    try:
        pk = int(book_id)
    except (TypeError, ValueError):
        raise Http404("Carnet introuvable") from None
    for book in books_for_user(user):
        if book.pk == pk:
            return book
    raise Http404("Carnet introuvable")


def contact_for_user(user, contact_id) -> Contact:
    try:
        pk = int(contact_id)
    except (TypeError, ValueError):
        raise Http404("Contact introuvable") from None
    contact = Contact.objects.select_related("book").filter(pk=pk, hidden=False).first()
    if contact is None or contact.book_id not in {b.pk for b in books_for_user(user)}:
        raise Http404("Contact introuvable")
    return contact


def source_boxes(book: AddressBook) -> list[int]:
    if book.mailbox_id:
        return [book.mailbox_id]
    return list(
        Mailbox.objects.filter(owner__user_id=book.owner_id, kind=Mailbox.Kind.NOMINATIVE).values_list("pk", flat=True)
    )


# --- Filling from the mail exchanged -----------------------------------------------------------


def _correspondents(rows, own: set[str], box_ids: set[int]):
    """(address, name, when) of each correspondent in entry rows."""
    for row in rows:
        when = row["received_at"]
        if row["message__sender_mailbox_id"] in box_ids:
            people = list(row["message__to"] or []) + list(row["message__cc"] or [])
        elif row["message__auto_submitted"] or row["message__is_report"]:
            continue
        else:
            people = [{"address": row["message__from_address"], "name": row["message__from_name"]}]
        for person in people:
            address = (person.get("address") or "").strip().lower()
            if not address or address in own or "@" not in address:
                continue
            if SYSTEM_LOCAL_PART_RE.match(address.split("@", 1)[0]) or address == settings.PATIENT_SYSTEM_ADDRESS:
                continue
            yield address, (person.get("name") or "").strip()[:200], when


def fill_book(book_id: int) -> int:
    """Read the next batches of entries for one book; returns the number of entries read."""
    total = 0
    for _batch in range(MAX_BATCHES_PER_CALL):
        read = _fill_batch(book_id)
        total += read
        if read < BATCH:
            break
    return total


@transaction.atomic
def _fill_batch(book_id: int) -> int:
    book = AddressBook.objects.select_for_update().filter(pk=book_id).first()
    if book is None:
        return 0
    box_ids = set(source_boxes(book))
    if not box_ids:
        return 0
    rows = list(
        Entry.objects.filter(mailbox_id__in=box_ids, pk__gt=book.filled_up_to, is_draft=False)
        .order_by("pk")
        .values(
            "pk",
            "received_at",
            "message__from_address",
            "message__from_name",
            "message__to",
            "message__cc",
            "message__sender_mailbox_id",
            "message__auto_submitted",
            "message__is_report",
        )[:BATCH]
    )
    if not rows:
        return 0
    own = set(Mailbox.objects.filter(pk__in=box_ids).values_list("address", flat=True))
    seen: dict[str, list] = {}
    for address, name, when in _correspondents(rows, own, box_ids):
        item = seen.setdefault(address, [name, 0, when])
        item[0] = item[0] or name
        item[1] += 1
        item[2] = max(item[2], when)
    _merge(book, seen)
    AddressBook.objects.filter(pk=book.pk).update(filled_up_to=rows[-1]["pk"])
    return len(rows)


def _merge(book: AddressBook, seen: dict[str, list]) -> None:
    if not seen:
        return
    from webmail.people import names_for_addresses

    patient_names = names_for_addresses([a for a in seen if is_patient_address(a)])
    existing = {c.address: c for c in Contact.objects.filter(book=book, address__in=list(seen))}
    changed, created = [], []
    for address, (name, count, when) in seen.items():
        name = patient_names.get(address) or name
        contact = existing.get(address)
        if contact is None:
            created.append(
                Contact(
                    book=book,
                    address=address,
                    name=name,
                    exchanges=count,
                    last_exchanged_at=when,
                    search_key=search_key(name, address),
                )
            )
            continue
        contact.exchanges += count
        contact.last_exchanged_at = max(filter(None, [contact.last_exchanged_at, when]))
        if not contact.name and name:
            contact.name = name
            contact.search_key = search_key(name, address)
        changed.append(contact)
    Contact.objects.bulk_create(created)
    Contact.objects.bulk_update(changed, ["exchanges", "last_exchanged_at", "name", "search_key"])


def refresh_for_user(user) -> list[AddressBook]:
    books = books_for_user(user)
    for book in books:
        fill_book(book.pk)
    return books


def fill_all_books(limit: int = 500) -> int:
    """Periodic: bring the books most behind up to date (those with newer entries)."""
    done = 0
    for book_id in AddressBook.objects.order_by("filled_up_to").values_list("pk", flat=True)[:limit]:
        if fill_book(book_id):
            done += 1
    return done


# --- Search (the recipient completion calls this) ----------------------------------------------


def search_key(name: str, address: str) -> str:
    return fold(f"{name} {address}")[:500]


def search_contacts(user, term: str, limit: int = 8) -> list[dict]:
    """Contacts of the person's books whose name or address contains `term` (case and accents
    ignored), most exchanged first: [{"address", "name", "book": "personal"|"shared"}]."""
    words = fold(term).split()
    if not words or len(" ".join(words)) < 2:
        return []
    books = {b.pk: b for b in books_for_user(user)}
    query = Q()
    for word in words[:5]:
        query &= Q(search_key__contains=word)
    rows = (
        Contact.objects.filter(query, book_id__in=list(books), hidden=False)
        .order_by("-exchanges", "-last_exchanged_at", "address")
        .values("address", "name", "book_id")[: limit * 2]
    )
    result, addresses = [], set()
    for row in rows:
        if row["address"] in addresses:
            continue
        addresses.add(row["address"])
        shared = books[row["book_id"]].is_shared
        result.append({"address": row["address"], "name": row["name"], "book": "shared" if shared else "personal"})
        if len(result) == limit:
            break
    return result


# --- Editing -----------------------------------------------------------------------------------


def checked_address(value: str) -> str:
    try:
        address = normalise_address(value)
    except InvalidAddress:
        raise ValidationError(
            _("« %(v)s » n'est pas une adresse de messagerie valide.") % {"v": (value or "")[:254]}
        ) from None
    domain = domain_of(address)
    if classify_domains({domain})[domain] == "untrusted":
        raise ValidationError(
            _(
                "Le domaine « %(d)s » n'appartient pas à l'espace de confiance MSSanté : on ne peut pas lui écrire d'ici."
            )
            % {"d": domain}
        )
    return address


def save_contact(book: AddressBook, *, address: str, name: str = "", note: str = "") -> Contact:
    """Add a contact by hand (or show again one that was removed, with the new details)."""
    address = checked_address(address)
    name, note = " ".join((name or "").split())[:200], " ".join((note or "").split())[:300]
    with transaction.atomic():
        contact = Contact.objects.select_for_update().filter(book=book, address=address).first()
        if contact is not None and not contact.hidden:
            raise ValidationError(_("Ce carnet contient déjà %(a)s.") % {"a": address})
        if contact is None:
            try:
                with transaction.atomic():
                    contact = Contact.objects.create(book=book, address=address, source=Contact.Source.MANUAL)
            except IntegrityError:
                raise ValidationError(_("Ce carnet contient déjà %(a)s.") % {"a": address}) from None
        contact.hidden = False
        contact.name, contact.note = name, note
        contact.search_key = search_key(name, address)
        contact.save()
    return contact


def update_contact(contact: Contact, *, name: str, note: str) -> Contact:
    contact.name = " ".join((name or "").split())[:200]
    contact.note = " ".join((note or "").split())[:300]
    contact.search_key = search_key(contact.name, contact.address)
    contact.save(update_fields=["name", "note", "search_key", "updated_at"])
    return contact


def remove_contact(contact: Contact) -> None:
    Contact.objects.filter(pk=contact.pk).update(hidden=True)


def book_contacts(book: AddressBook, term: str = ""):
    contacts = Contact.objects.filter(book=book, hidden=False)
    for word in fold(term).split()[:5]:
        contacts = contacts.filter(search_key__contains=word)
    return contacts.order_by("name", "address")
