"""Pages of the professional webmail (issue 6): three panes, reading, organising, sharing,
search, delivery timeline and compose. Views parse and answer; the modules `organise`,
`sharing`, `drafts`, `search` and `mailboxes.compose` act. Every object is fetched through
`mailboxes.access` (via `webmail.selectors`), so "not yours" is a 404.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.events import client_ip
from directory import ratelimit
from directory.views import completion_payload, professional_required, too_many_response, typed_recipient
from mailboxes.display_text import display_name
from mailboxes.models import Entry, Folder, Mailbox
from mailboxes.patient_domain import is_patient_address
from mailboxes.shown_body import shown_body
from patients.conversation import conversation_for
from patients.policy import patient_for_address
from webmail import contacts, drafts, headers, organise, selection, sharing
from webmail.forms import ComposeForm, SearchForm
from webmail.people import names_for_addresses
from webmail.quota import quota_usage
from webmail.replies import (
    distinct_reply_to,
    draft_attachments,
    forward_attachments_for,
    initial_for,
    reply_note,
    reply_to_name,
    send,
)
from webmail.rows import prepare
from webmail.rows import render as render_rows
from webmail.search import search_page
from webmail.selectors import (
    can_manage,
    encode_cursor,
    folder_of,
    folder_page,
    locate,
    navigation,
    newest_in_folder,
    next_in_folder,
    pro_entry,
    pro_mailbox,
    pro_mailboxes,
    thread_of,
)
from webmail.timeline import timeline

logger = logging.getLogger(__name__)
User = get_user_model()


def _ip(request):
    """The client's address behind the trusted proxy (audit.events.client_ip)."""
    return client_ip(request)


def _default_box(nav):
    for node in nav:
        if node.mailbox.kind == Mailbox.Kind.NOMINATIVE:
            return node
    return nav[0] if nav else None


def _list_context(request, mailbox, folder, current_id=None):
    page = folder_page(mailbox, folder, after=request.GET.get("apres"), before=request.GET.get("avant"))
    prepare(page.rows, recipients=folder.role in (Folder.Role.SENT, Folder.Role.DRAFTS), current_id=current_id)
    return {"page": page, "list_url": reverse("webmail:folder", args=[mailbox.pk, folder.pk])}


def _panes(request, nav, mailbox, folder, *, entry=None, extra=None):
    """The three panes. `nav` was loaded through `mailboxes.access`; `mailbox` and `folder` come
    from it (`selectors.locate`)."""
    context = {
        "nav": nav,
        "unread_total": sum(node.unread for node in nav),
        "poll_seconds": settings.WEBMAIL_POLL_SECONDS,
        "mailbox": mailbox,
        "folder": folder,
        "entry": entry,
        "is_shared": sharing.is_shared(mailbox),
        "search_form": None,  # the search view brings its bound form, with `searching`
        "message_base": reverse("webmail:message", args=[0])[:-2],
        "move_targets": [f for n in nav if n.mailbox.pk == mailbox.pk for f in n.folders],
        "quota": quota_usage(mailbox),
    }
    if extra and "page" in extra:
        context.update(extra)
    else:
        context.update(_list_context(request, mailbox, folder, current_id=entry.pk if entry else None))
        context.update(extra or {})
    if context.get("page"):
        context["rows_html"] = render_rows([row.cells for row in context["page"].rows])
        # The newest message shown (the first row of a first page): new mail changes it.
        rows = context["page"].rows
        context["latest"] = encode_cursor(rows[0].entry) if rows and context["page"].is_first else ""
    template = "webmail/_list.html" if list_pane_only(request) else "webmail/mail.html"
    return render(request, template, context)


def list_pane_only(request) -> bool:
    """htmx asks for the list pane alone (the pager, the new-mail reload): no left pane, so no
    unread count to show (the poll brings them)."""
    return bool(request.htmx) and request.htmx.target == "list-pane"


@login_required
@require_GET
def home(request):
    """The landing page of professionals: their boxes, and the inbox of the first one."""
    nav = navigation(request.user)
    node = _default_box(nav)
    if node is None:
        return render(request, "webmail/mail.html", {"nav": nav, "empty_account": True})
    mailbox, folder = locate(nav, node.mailbox.pk)
    return _panes(request, nav, mailbox, folder)


@login_required
@require_GET
def poll(request, mailbox_id, folder_id):
    """What an open page asks every WEBMAIL_POLL_SECONDS (static/js/webmail.js, issue 16 item
    15): the unread count of every folder, their total over the inboxes (the tab title), and the
    newest message of the folder shown — when it changed, the page reloads its list pane alone.
    Two queries (the navigation with its counts, the newest); the box and folder come from the
    navigation, so "not yours" is a 404."""
    nav = navigation(request.user)
    mailbox, current = locate(nav, mailbox_id, folder_id)
    response = JsonResponse(
        {
            "unread_total": sum(node.unread for node in nav),
            "folders": {str(item.folder.pk): item.unread for node in nav for item in node.folders},
            "latest": newest_in_folder(current),
        }
    )
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def mailbox_home(request, mailbox_id):
    mailbox = pro_mailbox(request.user, mailbox_id)
    return redirect("webmail:folder", mailbox.pk, mailbox.folder(Folder.Role.INBOX).pk)


@login_required
@require_GET
def folder(request, mailbox_id, folder_id):
    nav = navigation(request.user, counts=not list_pane_only(request))
    mailbox, current = locate(nav, mailbox_id, folder_id)
    return _panes(request, nav, mailbox, current)


def _reading_context(request, entry: Entry) -> dict:
    message = entry.message
    attachments = list(message.attachments.filter(is_inline=False).order_by("position"))
    shared = sharing.is_shared(entry.mailbox)
    sent_here = message.sender_mailbox_id == entry.mailbox_id
    addresses = [message.from_address] + [r.get("address", "") for r in (message.to or []) + (message.cc or [])]
    patient_addresses = [a for a in addresses if a and is_patient_address(a)]
    names = names_for_addresses(patient_addresses)
    context = {
        "message": message,
        "attachments": attachments,
        "thread": thread_of(entry),
        "readers": list(sharing.readers(entry)) if shared else [],
        "handled": sharing.is_handled(entry),
        "members": list(sharing.members(entry.mailbox)) if shared else [],
        "sent_here": sent_here,
        "timeline": timeline(entry) if sent_here else None,
        "from_name": names.get(message.from_address) or display_name(message.from_name),
        "reply_to": distinct_reply_to(message),
        "reply_to_name": reply_to_name(message),
        "to_list": [
            (r.get("address", ""), names.get(r.get("address", ""), r.get("name", ""))) for r in message.to or []
        ],
        "cc_list": [
            (r.get("address", ""), names.get(r.get("address", ""), r.get("name", ""))) for r in message.cc or []
        ],
        "patient_panel": patient_panel(entry.mailbox, patient_addresses),
        "remote_images": request.GET.get("images") == "1",
    }
    return context


def patient_panel(mailbox, patient_addresses):
    """Context of the patient side's conversation panel (`patients.conversation`, template
    `patients/_pro_conversation_panel.html`) when a patient takes part in the message."""
    if not patient_addresses or mailbox.kind == Mailbox.Kind.PATIENT:
        return None
    patient = patient_for_address(patient_addresses[0])
    if patient is None:
        return None
    return {"mailbox": mailbox, "patient": patient, "conversation": conversation_for(mailbox, patient)}


@login_required
@require_GET
def message(request, entry_id):
    entry = pro_entry(request.user, entry_id)
    if entry.is_draft:
        return redirect(f"{reverse('webmail:compose')}?brouillon={entry.pk}")
    sharing.open_entry(entry, request.user, ip=_ip(request))
    nav = navigation(request.user)
    mailbox, current = locate(nav, entry.mailbox_id, entry.folder_id)
    return _panes(request, nav, mailbox, current, entry=entry, extra=_reading_context(request, entry))


@xframe_options_sameorigin
@login_required
@require_GET
def message_body(request, entry_id):
    """The sanitised HTML body, alone, for the sandboxed frame of the reading pane.

    Its own CSP forbids everything but inline styles and `data:` images; remote images are
    allowed only when the user asked (`?images=1`). The frame has no `allow-scripts`.
    """
    entry = pro_entry(request.user, entry_id)
    sharing.open_entry(entry, request.user, ip=_ip(request), via="body")
    images = request.GET.get("images") == "1"
    html = render_to_string("webmail/body.html", {"html": shown_body(entry.message).html})
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    img_src = "data: https: http:" if images else "data:"
    response["Content-Security-Policy"] = (
        f"default-src 'none'; img-src {img_src}; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox allow-popups "
        "allow-popups-to-escape-sandbox"
    )
    # django-csp's middleware leaves a response's own Content-Security-Policy as it is.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def message_headers(request, entry_id):
    entry = pro_entry(request.user, entry_id)
    sharing.open_entry(entry, request.user, ip=_ip(request), via="headers")
    fields = headers.raw_headers(entry.message)
    template = "webmail/_headers.html" if request.htmx else "webmail/headers.html"
    return render(request, template, {"entry": entry, "fields": fields})


@login_required
@require_GET
def message_print(request, entry_id):
    entry = pro_entry(request.user, entry_id)
    sharing.open_entry(entry, request.user, ip=_ip(request), via="print")
    attachments = entry.message.attachments.filter(is_inline=False).order_by("position")
    context = {"entry": entry, "message": entry.message, "attachments": attachments}
    reply_to = {"reply_to": distinct_reply_to(entry.message), "reply_to_name": reply_to_name(entry.message)}
    return render(request, "webmail/print.html", {**context, **reply_to})


@login_required
@require_GET
def message_timeline(request, entry_id):
    entry = pro_entry(request.user, entry_id)
    return render(request, "webmail/timeline.html", {"entry": entry, "timeline": timeline(entry)})


def _back(request, entry: Entry | None = None, fallback=None):
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    if fallback:
        return redirect(fallback)
    return redirect("webmail:message", entry.pk)


@login_required
@require_POST
def message_action(request, entry_id):
    """One organising or sharing action on a message, chosen by `action`."""
    entry = pro_entry(request.user, entry_id)
    action = request.POST.get("action", "")
    folder_url = reverse("webmail:folder", args=[entry.mailbox_id, entry.folder_id])
    try:
        if action in ("archive", "trash", "move"):
            # Out of this folder: on to the next message of the list, as mail programs do.
            following = next_in_folder(entry)
            if following is not None:
                folder_url = reverse("webmail:message", args=[following.pk])
        if action == "archive":
            organise.archive_entry(entry, request.user)
            messages.success(request, _("Message archivé."))
            return _back(request, fallback=folder_url)
        if action == "trash":
            organise.trash_entry(entry, request.user)
            messages.success(request, _("Message placé dans la corbeille."))
            return _back(request, fallback=folder_url)
        if action == "restore":
            organise.restore_entry(entry, request.user)
            messages.success(request, _("Message restauré."))
        elif action == "move":
            if not request.POST.get("folder"):
                raise ValidationError(_("Choisissez le dossier où déplacer le message."))
            target = folder_of(entry.mailbox, request.POST.get("folder"))
            organise.move_entry(entry, target, request.user)
            messages.success(request, _("Message déplacé dans « %(f)s ».") % {"f": target.name})
            return _back(request, fallback=folder_url)
        elif action in ("flag", "unflag"):
            organise.set_flag(entry, flagged=action == "flag")
        elif action in ("read", "unread"):
            organise.set_seen(entry, seen=action == "read")
            if action == "unread":
                messages.success(request, _("Message marqué comme non lu."))
                return _back(request, fallback=folder_url)
        elif action == "claim":
            sharing.assign_entry(entry, request.user, request.user)
            messages.success(request, _("Vous prenez ce message en charge."))
        elif action == "assign":
            assignee = None
            if request.POST.get("assignee"):
                try:
                    assignee = sharing.members(entry.mailbox).get(pk=int(request.POST["assignee"]))
                except (User.DoesNotExist, ValueError):
                    raise ValidationError(_("Choisissez un membre de la boîte.")) from None
            sharing.assign_entry(entry, assignee, request.user)
            messages.success(
                request,
                _("Message attribué à %(n)s.") % {"n": assignee.get_full_name() or assignee.username}
                if assignee
                else _("Le message n'est plus attribué."),
            )
        elif action in ("done", "undone"):
            sharing.mark_done(entry, request.user, done=action == "done")
            messages.success(request, _("Message marqué comme traité.") if action == "done" else _("Message rouvert."))
        else:
            raise ValidationError(_("Action inconnue."))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return _back(request, entry)


@login_required
def message_delete(request, entry_id):
    """Delete for good, from the trash only, after a confirmation page."""
    entry = pro_entry(request.user, entry_id)
    if entry.folder.role != Folder.Role.TRASH:
        raise Http404("Message introuvable dans la corbeille")
    if request.method == "POST":
        organise.delete_entry(entry, request.user)
        messages.success(request, _("Message supprimé définitivement."))
        return redirect("webmail:folder", entry.mailbox_id, entry.folder_id)
    return render(
        request,
        "webmail/confirm.html",
        {
            "title": _("Supprimer définitivement ce message ?"),
            "text": _("Le message « %(s)s » sera effacé de la boîte %(b)s. Cette action est irréversible.")
            % {"s": entry.message.subject or _("(sans objet)"), "b": entry.mailbox.address},
            "button": _("Supprimer définitivement"),
            "cancel": reverse("webmail:message", args=[entry.pk]),
        },
    )


@login_required
def empty_trash(request, mailbox_id):
    mailbox = pro_mailbox(request.user, mailbox_id)
    trash = mailbox.folder(Folder.Role.TRASH)
    if request.method == "POST":
        count = organise.empty_trash(mailbox, request.user)
        messages.success(request, _("Corbeille vidée (%(n)d messages supprimés).") % {"n": count})
        return redirect("webmail:folder", mailbox.pk, trash.pk)
    count = Entry.objects.filter(folder=trash).count()
    return render(
        request,
        "webmail/confirm.html",
        {
            "title": _("Vider la corbeille ?"),
            "text": _("Les %(n)d messages de la corbeille de %(b)s seront effacés. Cette action est irréversible.")
            % {"n": count, "b": mailbox.address},
            "button": _("Vider la corbeille"),
            "cancel": reverse("webmail:folder", args=[mailbox.pk, trash.pk]),
        },
    )


@login_required
@require_POST
def folder_create(request, mailbox_id):
    mailbox = pro_mailbox(request.user, mailbox_id)
    try:
        created = organise.create_folder(mailbox, request.POST.get("name", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("webmail:mailbox", mailbox.pk)
    messages.success(request, _("Dossier « %(n)s » créé.") % {"n": created.name})
    return redirect("webmail:folder", mailbox.pk, created.pk)


def _folder_deleted_text(moved: int) -> str:
    if not moved:
        return _("Dossier supprimé ; il était vide.")
    return ngettext(
        "Dossier supprimé ; %(n)d message placé dans la corbeille.",
        "Dossier supprimé ; %(n)d messages placés dans la corbeille.",
        moved,
    ) % {"n": moved}


@login_required
def folder_edit(request, mailbox_id, folder_id):
    mailbox = pro_mailbox(request.user, mailbox_id)
    target = folder_of(mailbox, folder_id)
    if target.role != Folder.Role.USER:
        raise Http404("Dossier introuvable")
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                moved = organise.delete_folder(target, request.user)
                messages.success(request, _folder_deleted_text(moved))
                return redirect("webmail:mailbox", mailbox.pk)
            organise.rename_folder(target, request.POST.get("name", ""))
            messages.success(request, _("Dossier renommé."))
            return redirect("webmail:folder", mailbox.pk, target.pk)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
    return render(
        request,
        "webmail/folder_edit.html",
        {"mailbox": mailbox, "target": target, "count": Entry.objects.filter(folder=target).count()},
    )


@login_required
@require_POST
def bulk_action(request, mailbox_id):
    """One action on the messages ticked in the list (issue 16 item 16), all or nothing.
    Trashing and deleting for good ask for a confirmation first."""
    nav = navigation(request.user)
    mailbox, inbox = locate(nav, mailbox_id)
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()) or not back.startswith("/"):
        back = reverse("webmail:folder", args=[mailbox.pk, inbox.pk])
    action = request.POST.get("action", "")
    try:
        entries = selection.selected_entries(request.user, mailbox, request.POST.getlist("entries"))
        if action in selection.NEEDS_CONFIRMATION and request.POST.get("confirmed") != "1":
            return render(request, "webmail/confirm_selection.html", _selection_confirmation(action, entries, back))
        target = None
        if action == "move":
            target = folder_of(mailbox, request.POST["folder"]) if request.POST.get("folder") else None
        messages.success(request, selection.apply(action, entries, request.user, folder=target))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect(back)


def _selection_confirmation(action, entries, back) -> dict:
    count = len(entries)
    if action == "delete":
        title = _("Supprimer définitivement %(n)d message(s) ?") % {"n": count}
        text = _("Ces messages seront effacés de la boîte %(b)s. Cette action est irréversible.")
        button = _("Supprimer définitivement")
    else:
        title = _("Placer %(n)d message(s) dans la corbeille ?") % {"n": count}
        text = _(
            "Ces messages de la boîte %(b)s iront dans la corbeille, d'où ils peuvent être restaurés "
            "jusqu'à ce qu'elle soit vidée."
        )
        button = _("Placer dans la corbeille")
    return {
        "title": title,
        "text": text % {"b": entries[0].mailbox.address},
        "button": button,
        "action": action,
        "entries": entries[:500],
        "shown": entries[:10],
        "more": max(0, count - 10),
        "next": back,
        "cancel": back,
    }


SEARCH_SESSION_KEY = "webmail_searches"


@login_required
@require_http_methods(["GET", "POST"])
def search(request, mailbox_id):
    """Search terms stay out of URLs (access and proxy logs keep them): the form is POSTed and
    kept in the session under a random token; result pages are `?r=<token>` plus a cursor."""
    nav = navigation(request.user)
    mailbox, inbox = locate(nav, mailbox_id)
    if request.method == "POST":
        form = SearchForm(request.POST)
        if form.is_valid():
            token = _remember_search(request, request.POST)
            return redirect(f"{request.path}?r={token}", permanent=False)
        return _panes(request, nav, mailbox, inbox, extra={"search_form": form, "searching": True, "page": None})
    token = request.GET.get("r", "")
    stored = request.session.get(SEARCH_SESSION_KEY, {}).get(token) if token else None
    # Only a token of this session names a search: terms in the query string (`?q=`) are never
    # read, so no link, bookmark or script can put them in an access log (issue 15 item 10).
    form = SearchForm(stored or {})
    criteria = form.criteria() if stored and form.is_valid() else None
    extra = {"search_form": form, "searching": True}
    if criteria is None or criteria.empty:
        extra.update({"page": None, "list_url": request.path})
    else:
        page = search_page(mailbox, criteria, after=request.GET.get("apres"), before=request.GET.get("avant"))
        prepare(page.rows, recipients=False, show_folder=True)
        query = request.GET.copy()
        query.pop("apres", None)
        query.pop("avant", None)
        extra.update(
            {
                "page": page,
                "list_url": f"{request.path}?{query.urlencode()}",
                "search_query": query.urlencode(),
            }
        )
    return _panes(request, nav, mailbox, inbox, extra=extra)


def _remember_search(request, data) -> str:
    import secrets

    searches = request.session.get(SEARCH_SESSION_KEY, {})
    token = secrets.token_urlsafe(9)
    searches[token] = {
        k: data.get(k) for k in ("q", "unread", "attachments", "sender", "since", "until") if data.get(k)
    }
    request.session[SEARCH_SESSION_KEY] = dict(list(searches.items())[-20:])
    return token


@login_required
def signature(request, mailbox_id):
    mailbox = pro_mailbox(request.user, mailbox_id)
    if not can_manage(request.user, mailbox):
        raise PermissionDenied(_("Seuls le titulaire ou les gestionnaires de la boîte modifient sa signature."))
    if request.method == "POST":
        sharing.save_signature(mailbox, request.POST.get("signature", ""), request.user)
        messages.success(request, _("Signature enregistrée."))
        return redirect("webmail:mailbox", mailbox.pk)
    return render(request, "webmail/signature.html", {"mailbox": mailbox})


@login_required
@require_GET
def shortcuts_help(request):
    return render(request, "webmail/help.html")


# --- Compose ---------------------------------------------------------------------------------


@login_required
def compose(request):
    boxes = list(navigation_boxes(request.user))
    if not boxes:
        raise Http404("Aucune boîte aux lettres")
    if request.method == "POST":
        saving_draft = request.POST.get("action") == "draft"  # "Enregistrer le brouillon"
        form = posted_compose_form(request, boxes, draft=saving_draft)
        wants_json = request.headers.get("X-Webmail-Upload") == "1"
        if form.is_valid() and saving_draft:
            entry = drafts.save_draft(form, request.user)
            messages.success(request, _("Brouillon enregistré."))
            target = f"{reverse('webmail:compose')}?brouillon={entry.pk}"
            return JsonResponse({"redirect": target}) if wants_json else redirect(target)
        if form.is_valid():
            outcome = send(request, form)
            if outcome.ok:
                if wants_json:
                    return JsonResponse({"redirect": outcome.redirect})
                return redirect(outcome.redirect)
            for error in outcome.errors:
                form.add_error(None, error)
        if wants_json:
            errors = [str(e) for e in form.non_field_errors()]
            errors += [
                f"{form.fields[name].label} : {e}"
                for name, errs in form.errors.items()
                if name != "__all__"
                for e in errs
            ]
            return JsonResponse({"errors": errors}, status=400)
        context = {**_compose_context(request, form, boxes), **reply_note(request.user, request.POST)}
        return render(request, "webmail/compose.html", context, status=400)
    contacts.refresh_for_user(request.user)  # the completion proposes the latest correspondents
    initial, extra = initial_for(request, boxes)
    form = ComposeForm(
        initial=initial, boxes=boxes, user=request.user, forward_attachments=extra.pop("forward_attachments")
    )
    context = _compose_context(request, form, boxes)
    context.update(extra)
    return render(request, "webmail/compose.html", context)


def posted_compose_form(request, boxes, *, draft: bool) -> ComposeForm:
    """The composer's form as posted, for sending or for a draft (the one set-up of both)."""
    return ComposeForm(
        request.POST,
        request.FILES,
        boxes=boxes,
        user=request.user,
        draft=draft,
        forward_attachments=forward_attachments_for(request.user, request.POST),
    )


def navigation_boxes(user):
    return pro_mailboxes(user).select_related("owner", "responsible")


def _compose_context(request, form, boxes):
    return {
        "form": form,
        "boxes": boxes,
        "max_bytes": min(b.max_message_bytes or settings.MAILBOX_MAX_MESSAGE_BYTES for b in boxes),
        "attachment_max_bytes": settings.ATTACHMENT_MAX_BYTES,
        "forward_attachments": form.forward_attachments,
    }


@login_required
@require_POST
def draft_save(request):
    """Automatic save of the message being written (Drafts folder); answers JSON with the
    draft's id and its attachments (the script posts the files only when they changed)."""
    form = posted_compose_form(request, list(navigation_boxes(request.user)), draft=True)
    if not form.is_valid():
        return JsonResponse({"saved": False}, status=400)
    entry = drafts.save_draft(form, request.user)
    attachments = [{"id": a.pk, "filename": a.filename, "size": a.size} for a in draft_attachments(entry)]
    return JsonResponse({"saved": True, "draft": entry.pk, "attachments": attachments})


@professional_required
@require_POST
def recipients(request):
    """Completion of the recipient being typed (static/js/directory.js): the person's contacts
    first (webmail/contacts.py), then the directory; a typed INS gets its key checked, never
    the patient's name (issue 15 item 8). POST: no search term or INS in a URL (item 10)."""
    if not ratelimit.allow(request.user.pk):
        return too_many_response()
    payload = completion_payload(typed_recipient(request))
    if payload["ins"] is None:
        found = contacts.search_contacts(request.user, payload["term"])
        known = {c["address"] for c in found}
        directory_results = [r for r in payload["results"] if r["address"] not in known]
        payload["results"] = [contact_result(c) for c in found] + directory_results
    return JsonResponse(payload)


def contact_result(contact: dict) -> dict:
    shared = contact["book"] == "shared"
    return {
        "address": contact["address"],
        "name": contact["name"] or contact["address"],
        "kind": "",
        "contact": contact["book"],
        "contact_label": _("contact partagé") if shared else _("contact"),
    }
