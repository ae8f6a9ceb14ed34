"""The rows of the message list: what each cell of a row shows, computed once per page
(`prepare`); `templates/jinja2/webmail/_row.html` writes their markup (`render`), every value
auto-escaped by the template.

Each row's cells are a plain dict (`row.cells`), read by subscript in the template. The partial
is the one Jinja2 template of the product: the same markup in Django's template language cost
about 2 ms more per list page (bench/RESULTS.md, issue 13).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.template.loader import get_template
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.formats import get_format
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from mailboxes.display_text import sender_label
from webmail.people import names_for_addresses


def render(cells: list[dict]) -> SafeString:
    """The rows' markup: `_row.html` over the cells of `prepare`. Jinja2 escaped every value
    (the environment's auto-escaping, mssante/jinja2.py), so the markup is safe as it is."""
    markup = get_template("webmail/_row.html", using="jinja2").render({"rows": cells, "labels": labels()})
    return mark_safe(markup)  # noqa: S308 - auto-escaped by the template (tests/webmail/test_panes.py)


def labels() -> dict[str, str]:
    """The texts of the rows' marks and badges, in the active language."""
    return {
        "pick": _("Sélectionner :"),
        "unread": _("non lu"),
        "flag_title": _("Suivi"),
        "flag_label": _("suivi"),
        "clip_title": _("Pièce jointe"),
        "clip_label": _("pièce jointe"),
        "answered_title": _("Répondu"),
        "answered_label": _("répondu"),
        "thread_title": _("Messages de la conversation"),
        "done": _("traité"),
    }


def prepare(rows, *, recipients: bool, current_id=None, show_folder: bool = False) -> None:
    """Set `row.cells` on each row: what `_row.html` shows (texts, marks, badges, dates)."""
    no_subject = _("(sans objet)")
    message_base = reverse("webmail:message", args=[0])[:-2]
    addresses = set()
    for row in rows:
        message = row.entry.message
        addresses.add(message.from_address)
        if recipients:
            addresses.update(r.get("address", "") for r in (message.to or [])[:5])
    names = names_for_addresses(addresses)
    tz = timezone.get_current_timezone()
    today = timezone.localdate()
    assignees = _assignees(rows)
    # One date formatting per value shown: a page's rows mostly share a few days.
    shown: dict[tuple, str] = {}
    for row in rows:
        entry, message = row.entry, row.entry.message
        local = entry.received_at.astimezone(tz)
        day = local.date()
        key = (day, local.hour, local.minute) if day == today else (day,)
        if key not in shown:
            shown[key] = short_date(local, today)
        current = entry.pk == current_id
        classes = [
            name for name, on in (("unread", not entry.seen), ("thread-child", row.child), ("selected", current)) if on
        ]
        # Numbers as text: the template prints a string as it is, an int through number
        # localisation (a measurable share of the page with two ids a row).
        row.cells = {
            "pk": str(entry.pk),
            "href": f"{message_base}{entry.pk}/",
            "css": " ".join(classes),
            "current": current,
            "who": _who(message, names, recipients),
            "subject": (("↳ " if row.child else "") + message.subject) if message.subject else no_subject,
            "unread": not entry.seen,
            "flagged": entry.flagged,
            "attachment": message.has_attachments,
            "answered": entry.answered,
            "thread_size": str(row.thread_size) if row.thread_size > 1 else "",
            "assignee": assignees.get(entry.assigned_to_id, ""),
            "done": bool(entry.done_at),
            "folder": entry.folder.name if show_folder else "",
            "iso": local.isoformat(),
            "when": shown[key],
        }


def _who(message, names: dict[str, str], recipients: bool) -> str:
    """The correspondent: the recipients in Sent and Drafts, else the sender (a patient's name
    beside a patient address)."""
    if recipients:
        people = [r.get("address", "") for r in (message.to or [])[:3]]
        return ", ".join(f"{names[a]} ({a})" if a in names else a for a in people) or "—"
    if message.from_address in names:
        return f"{names[message.from_address]} ({message.from_address})"
    return sender_label(message.from_name, message.from_address)


def _assignees(rows) -> dict[int, str]:
    """Who handles what (shared boxes only): one query for the page, none when nobody is assigned."""
    assigned_ids = {row.entry.assigned_to_id for row in rows if row.entry.assigned_to_id}
    if not assigned_ids:
        return {}
    return {
        user.pk: user.first_name or user.username
        for user in get_user_model().objects.filter(pk__in=assigned_ids).only("first_name", "username")
    }


def short_date(moment, today) -> str:
    """What a mail list shows: the time today ("9 h 30"), the day and month this year, else the
    full date — the active language's named formats (mssante/formats), like the `mss_format`
    filters."""
    if moment.date() == today:
        return dateformat.format(moment, get_format("TIME_FORMAT"))
    if moment.year == today.year:
        return dateformat.format(moment, "j N")
    return dateformat.format(moment, get_format("SHORT_DATE_FORMAT"))
