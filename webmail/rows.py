"""The rows of the message list, built in Python: what each cell shows, and their HTML.

The list is the page professionals load all day (issue 6 "fast on 100,000 messages"): template
tags per row are its bill (ENVIRONMENT.md), so the rows are rendered here with `format_html`
(every value escaped) from strings translated once per page; `_list.html` prints the result.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils import dateformat, timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from mailboxes.display_text import sender_label
from webmail.people import names_for_addresses


def prepare(rows, *, recipients: bool, current_id=None, show_folder: bool = False) -> None:
    """Set on each row: css, marks, who, subject, badges, iso, when, current, pk."""
    unread_mark = format_html('<span class="sr-only">{} </span>', _("non lu"))
    flag_mark = format_html('<span class="mark" title="{}" aria-label="{}">★</span>', _("Suivi"), _("suivi"))
    clip_mark = format_html(
        '<span class="mark mark-pj" title="{}" aria-label="{}">PJ</span>', _("Pièce jointe"), _("pièce jointe")
    )
    answered_mark = format_html('<span class="mark" title="{}" aria-label="{}">↩</span>', _("Répondu"), _("répondu"))
    done_badge = format_html(' <span class="badge badge-done">{}</span>', _("traité"))
    thread_title = escape(_("Messages de la conversation"))
    no_subject = _("(sans objet)")

    addresses = set()
    for row in rows:
        message = row.entry.message
        addresses.add(message.from_address)
        if recipients:
            addresses.update(r.get("address", "") for r in (message.to or [])[:5])
    names = names_for_addresses(addresses)
    tz = timezone.get_current_timezone()
    today = timezone.localdate()
    # Who handles what (shared boxes only): one query for the page, none when nobody is assigned.
    assigned_ids = {row.entry.assigned_to_id for row in rows if row.entry.assigned_to_id}
    assignees = {}
    if assigned_ids:
        assignees = {
            user.pk: user.first_name or user.username
            for user in get_user_model().objects.filter(pk__in=assigned_ids).only("first_name", "username")
        }

    for row in rows:
        entry, message = row.entry, row.entry.message
        if recipients:
            people = [r.get("address", "") for r in (message.to or [])[:3]]
            row.who = ", ".join(f"{names[a]} ({a})" if a in names else a for a in people) or "—"
        elif message.from_address in names:
            row.who = f"{names[message.from_address]} ({message.from_address})"
        else:
            row.who = sender_label(message.from_name, message.from_address)
        classes = []
        if not entry.seen:
            classes.append("unread")
        if row.child:
            classes.append("thread-child")
        row.current = entry.pk == current_id
        if row.current:
            classes.append("selected")
        row.css = " ".join(classes)
        marks = []
        if not entry.seen:
            marks.append(unread_mark)
        if entry.flagged:
            marks.append(flag_mark)
        if message.has_attachments:
            marks.append(clip_mark)
        if entry.answered:
            marks.append(answered_mark)
        row.marks = mark_safe("".join(marks))  # noqa: S308 - built from format_html pieces above
        badges = []
        if row.thread_size > 1:
            badges.append(f' <span class="badge" title="{thread_title}">{row.thread_size}</span>')
        if entry.assigned_to_id in assignees:
            badges.append(
                format_html(' <span class="badge badge-assigned">→ {}</span>', assignees[entry.assigned_to_id])
            )
        if entry.done_at:
            badges.append(done_badge)
        if show_folder:
            badges.append(format_html(' <span class="badge">{}</span>', entry.folder.name))
        row.badges = mark_safe("".join(badges))  # noqa: S308 - escaped pieces only
        row.subject = (("↳ " if row.child else "") + message.subject) if message.subject else no_subject
        local = entry.received_at.astimezone(tz)
        row.iso = local.isoformat()
        row.when = short_date(local, today)
        row.pk = entry.pk


def short_date(moment, today) -> str:
    """What a mail list shows: the time today, the day and month this year, else the full date —
    Django's date formatting in the active language, like the `mss_format` filters."""
    if moment.date() == today:
        return dateformat.format(moment, "H:i")
    if moment.year == today.year:
        return dateformat.format(moment, "j N")
    return dateformat.format(moment, "d/m/Y")


ROW_HTML = (
    '<tr{css}><td class="pick"><input type="checkbox" name="entries" value="{pk}" form="bulk-form"'
    ' aria-label="{pick} {subject}"></td><td class="marks">{marks}</td><td class="who">{who}</td><td class="subject"><a href="{base}{pk}/"'
    '{current}>{subject}</a>{badges}</td><td class="date"><time datetime="{iso}">{when}</time></td></tr>\n'
)


def render_rows(rows, message_base: str):
    """The `<tr>` of a page of the list. Only `who` and `subject` come from messages: they are
    escaped here; the other pieces are built by `prepare` (format_html) or are numbers/dates."""
    pick = escape(_("Sélectionner :"))
    return mark_safe(  # noqa: S308 - user text escaped below, the rest built by this module
        "".join(
            ROW_HTML.format(
                css=f' class="{row.css}"' if row.css else "",
                marks=row.marks,
                who=escape(row.who),
                base=message_base,
                pk=int(row.pk),
                current=' aria-current="true"' if row.current else "",
                pick=pick,
                subject=escape(row.subject),
                badges=row.badges,
                iso=row.iso,
                when=row.when,
            )
            for row in rows
        )
    )
