"""The one access-checked fetch per object type (STYLE.md §3).

Every view fetches mailboxes, entries and attachments through these functions. "Not yours" and
"does not exist" both raise Http404, so an id reveals nothing.

Who reaches a mailbox:
- nominative: its owner's account;
- organisational and applicative: their members;
- patient: the patient's account.
"""

from django.db.models import Q, QuerySet
from django.http import Http404

from mailboxes.models import Attachment, Entry, Mailbox, Membership, Professional


def mailboxes_for_user(user) -> QuerySet[Mailbox]:
    if not getattr(user, "is_authenticated", False):
        return Mailbox.objects.none()
    return (
        Mailbox.objects.filter(
            Q(owner__user=user) | Q(memberships__user=user) | Q(kind=Mailbox.Kind.PATIENT, patient__user=user),
            is_active=True,
        )
        .distinct()
        .order_by("kind", "address")
    )


def _pro_box_ids_sql() -> str:
    """The rule of `mailboxes_for_user` for the professional boxes (patient boxes left out) as a
    SQL subquery of their ids, for hot pages on PostgreSQL to compose into one statement
    (webmail.selectors.NAVIGATION_SQL) instead of compiling the ORM's query on each request.
    Two parameters: the user's id, twice. tests/foundation/test_access.py holds it to the ORM's
    answer for every kind of access."""
    box, pro, member = Mailbox._meta.db_table, Professional._meta.db_table, Membership._meta.db_table
    return (
        f'SELECT b."id" FROM "{box}" b WHERE b."is_active" AND b."kind" <> \'{Mailbox.Kind.PATIENT.value}\' '  # noqa: S608 - names from the models
        f'AND (b."owner_id" IN (SELECT p."id" FROM "{pro}" p WHERE p."user_id" = %s) '
        f'OR EXISTS (SELECT 1 FROM "{member}" m WHERE m."mailbox_id" = b."id" AND m."user_id" = %s))'
    )


PRO_BOX_IDS_SQL = _pro_box_ids_sql()


def mailbox_for_user(user, mailbox_id) -> Mailbox:
    try:
        return mailboxes_for_user(user).get(pk=int(mailbox_id))
    except (Mailbox.DoesNotExist, TypeError, ValueError):
        raise Http404("Boîte aux lettres introuvable") from None


def entries_for_user(user) -> QuerySet[Entry]:
    return Entry.objects.filter(mailbox__in=mailboxes_for_user(user).values("pk"))


def entry_for_user(user, entry_id) -> Entry:
    try:
        return entries_for_user(user).select_related("message", "mailbox", "folder").get(pk=int(entry_id))
    except (Entry.DoesNotExist, TypeError, ValueError):
        raise Http404("Message introuvable") from None


def attachment_for_user(user, attachment_id) -> tuple[Attachment, Entry]:
    """The attachment, and the entry through which this user reaches its message. The access
    check comes first and is the same query whether the attachment does not exist or is not
    this user's, so neither the answer nor its timing tells them apart."""
    try:
        pk = int(attachment_id)
    except (TypeError, ValueError):
        raise Http404("Pièce jointe introuvable") from None
    entry = entries_for_user(user).filter(message__attachments__pk=pk).select_related("mailbox").order_by("pk").first()
    if entry is None:
        raise Http404("Pièce jointe introuvable")
    return Attachment.objects.select_related("message").get(pk=pk), entry
