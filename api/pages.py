"""The return-box queue in the webmail (issue 10 §3): the organisational box's members see the
patients' replies "à traiter" with the patient's identity and documents by kind, and mark one
"classé" with a note. Its own pages and templates, linked from the webmail's box tools through
the partial `api/_return_queue_link.html`; the webmail does not import this app.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from api import returns
from api.models import ReturnReply
from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Mailbox
from webmail.selectors import pro_mailbox


def _queue_box(user, mailbox_id) -> Mailbox:
    box = pro_mailbox(user, mailbox_id)
    if box.kind != Mailbox.Kind.ORGANISATIONAL:
        raise Http404("Boîte aux lettres introuvable")
    return box


NOTE_MAX = 2000  # ReturnReply.note, as the API's `filed` call takes it


@login_required
def return_queue(request, mailbox_id):
    box = _queue_box(request.user, mailbox_id)
    show = request.GET.get("statut", ReturnReply.Status.TO_PROCESS)
    if show not in ReturnReply.Status.values:
        show = ReturnReply.Status.TO_PROCESS
    return _render_queue(request, box, show)


def _render_queue(request, box, show, *, refused=None, status=200):
    """The queue; `refused`, a note not filed (its reply's id, the note as typed, the error),
    shown at its reply's form."""
    replies = list(returns.queue(box, show).select_related("patient__mailbox", "entry")[:100])
    rows = [{"reply": r, "documents": returns.documents(r)} for r in replies]
    record(
        AuditEvent.Action.READ,
        actor=request.user,
        object_type="returnqueue",
        object_id=box.pk,
        mailbox_id=box.pk,
        request=request,
    )
    return render(
        request,
        "api/return_queue.html",
        {
            "mailbox": box,
            "rows": rows,
            "show": show,
            "to_process": ReturnReply.Status.TO_PROCESS,
            "refused": refused,
            "note_max": NOTE_MAX,
        },
        status=status,
    )


@login_required
@require_POST
def file_reply(request, mailbox_id, reply_id):
    box = _queue_box(request.user, mailbox_id)
    reply = ReturnReply.objects.filter(mailbox=box, pk=reply_id).first()
    if reply is None:
        raise Http404("Réponse introuvable")
    note = (request.POST.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        # Refused, not cut: nothing filed, the note kept in the form to shorten it.
        error = _(
            "La note fait %(n)d caractères : %(max)d au plus. Raccourcissez-la ; la réponse n'est pas classée."
        ) % {
            "n": len(note),
            "max": NOTE_MAX,
        }
        refused = {"reply_id": reply.pk, "note": note, "error": error}
        return _render_queue(request, box, ReturnReply.Status.TO_PROCESS, refused=refused, status=400)
    if returns.file_reply(reply, user=request.user, note=note):
        messages.success(request, _("Réponse classée."))
    else:
        messages.info(request, _("Cette réponse était déjà classée."))
    return redirect("api_pages:return_queue", box.pk)
