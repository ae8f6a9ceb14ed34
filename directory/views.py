"""Pages of the directory, for professionals only: the search page, recipient completion (JSON,
used by every recipient field) and the professional's dematerialisation choice.

Search terms and INS never travel in a URL (access and proxy logs keep URLs): the completion and
the search form are POSTed; a search is kept in the session under a random token, and the result
pages are addressed by that token and a page number (POST, redirect, GET).
"""

from __future__ import annotations

import secrets
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from audit.events import record
from audit.models import AuditEvent
from directory import ratelimit
from directory.forms import PreferencesForm, SearchForm
from directory.models import Entry
from directory.search import Suggestion, complete, filter_choices, search
from mailboxes.identifiers import ins_error, normalise_ins
from mailboxes.patient_domain import is_patient_address

SESSION_KEY = "directory_searches"
KEPT_SEARCHES = 20


def professional_required(view):
    """Signed-in professionals and staff of organisational boxes; patients get 403."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_professional_side:
            raise PermissionDenied(_("L'annuaire est réservé aux professionnels."))
        return view(request, *args, **kwargs)

    return wrapped


def _too_many():
    return _("Trop de recherches en peu de temps : patientez une minute.")


@professional_required
def search_page(request):
    choices = filter_choices()
    if request.method == "POST":
        form = SearchForm(request.POST, choices=choices)
        if form.is_valid():
            return redirect(f"{reverse('directory:search')}?r={_remember(request, form.cleaned_data)}")
        return render(request, "directory/search.html", {"form": form, "page": None}, status=400)
    stored = request.session.get(SESSION_KEY, {}).get(request.GET.get("r", ""))
    if not stored:
        return render(request, "directory/search.html", {"form": SearchForm(choices=choices), "page": None})
    form = SearchForm(stored, choices=choices)
    if not form.is_valid():
        return render(request, "directory/search.html", {"form": form, "page": None}, status=400)
    if not ratelimit.allow(request.user.pk):
        messages.error(request, _too_many())
        response = render(request, "directory/search.html", {"form": form, "page": None}, status=429)
        response["Retry-After"] = str(ratelimit.retry_after())
        return response
    try:
        number = int(request.GET.get("page", "1"))
    except ValueError:
        number = 1
    page = search(form.criteria(), number)
    context = {"form": form, "page": page, "token": request.GET["r"], "write_url": reverse("webmail:compose")}
    return render(request, "directory/search.html", context)


def _remember(request, data: dict) -> str:
    searches = request.session.get(SESSION_KEY, {})
    token = secrets.token_urlsafe(9)
    searches[token] = {key: data.get(key) or "" for key in ("q", "kind", "profession", "department")}
    request.session[SESSION_KEY] = dict(list(searches.items())[-KEPT_SEARCHES:])
    return token


@professional_required
@require_POST
def completion(request):
    """Suggestions for the recipient being typed (the last one of a comma-separated field)."""
    if not ratelimit.allow(request.user.pk):
        return too_many_response()
    return JsonResponse(completion_payload(typed_recipient(request)))


def too_many_response() -> JsonResponse:
    response = JsonResponse({"error": _too_many()}, status=429)
    response["Retry-After"] = str(ratelimit.retry_after())
    return response


def typed_recipient(request) -> str:
    """The recipient being typed: the last of a comma- or semicolon-separated field."""
    return request.POST.get("q", "")[:300].replace(";", ",").split(",")[-1].strip()


def completion_payload(term: str) -> dict:
    """{"term", "ins", "results"}: an INS check, or the directory's entries for `term`."""
    ins = ins_check(term)
    if ins is not None:
        return {"term": term, "ins": ins, "results": []}
    return {"term": term, "ins": None, "results": [result(e) for e in complete(term)]}


def ins_check(term: str) -> dict | None:
    """An INS typed by hand: whether its key is valid, and the patient address it makes. Never
    the patient's name (RULES.md §3: the INS alone must not reveal who it is)."""
    local = term.split("@", 1)[0]
    if "@" in term and not is_patient_address(term):
        return None
    compact = normalise_ins(local)
    if not (compact[:1].isdigit() and len(compact) >= 7 and compact.replace("A", "").replace("B", "").isdigit()):
        return None
    error = ins_error(compact)
    if error:
        return {"valid": False, "message": error, "address": ""}
    return {"valid": True, "message": _("Matricule INS valide."), "address": f"{compact}@{settings.PATIENT_DOMAIN}"}


def result(entry: Suggestion) -> dict:
    return {
        "address": entry.address,
        "name": entry.display_name,
        "kind": entry.kind,
        "kind_label": entry.kind_label,
        "profession": entry.profession_label,
        "specialty": entry.specialty_label,
        "structure": entry.structure_name,
        "town": entry.town,
        "hosted": entry.source == Entry.Source.HOSTED,
        "paper": paper_badge(entry),
    }


def paper_badge(entry: Entry | Suggestion) -> dict:
    """The dematerialisation badge every result shows (a secretary decides paper or e-mail)."""
    if entry.dematerialisation:
        return {"state": "no-paper", "label": _("Ne souhaite plus de papier")}
    if entry.dematerialisation is False:
        return {"state": "paper", "label": _("Accepte encore le papier")}
    return {"state": "unknown", "label": _("Choix papier non renseigné")}


@professional_required
def preferences(request):
    pro = getattr(request.user, "professional", None)
    if pro is None:
        return render(request, "directory/preferences.html", {"form": None}, status=200)
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            value = form.cleaned_data["dematerialisation"]
            if value != pro.dematerialisation:
                pro.dematerialisation = value
                pro.save(update_fields=["dematerialisation"])
                record(
                    AuditEvent.Action.DEMATERIALISATION_CHANGED,
                    actor=request.user,
                    obj=pro,
                    detail={"dematerialisation": value},
                    ip=request.META.get("REMOTE_ADDR"),
                )
            messages.success(request, _("Votre choix est enregistré ; l'annuaire l'affiche désormais."))
            return redirect("directory:preferences")
    else:
        form = PreferencesForm(initial={"dematerialisation": pro.dematerialisation})
    boxes = [e for e in Entry.objects.filter(mailbox__owner=pro) | Entry.objects.filter(mailbox__responsible=pro)]
    return render(request, "directory/preferences.html", {"form": form, "entries": boxes})
