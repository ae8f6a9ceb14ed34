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


@login_required
def return_queue(request, mailbox_id):
    box = _queue_box(request.user, mailbox_id)
    show = request.GET.get("statut", ReturnReply.Status.TO_PROCESS)
    if show not in ReturnReply.Status.values:
        show = ReturnReply.Status.TO_PROCESS
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
        {"mailbox": box, "rows": rows, "show": show, "to_process": ReturnReply.Status.TO_PROCESS},
    )


@login_required
@require_POST
def file_reply(request, mailbox_id, reply_id):
    box = _queue_box(request.user, mailbox_id)
    reply = ReturnReply.objects.filter(mailbox=box, pk=reply_id).first()
    if reply is None:
        raise Http404("Réponse introuvable")
    note = (request.POST.get("note") or "").strip()[:2000]
    if returns.file_reply(reply, user=request.user, note=note):
        messages.success(request, _("Réponse classée."))
    else:
        messages.info(request, _("Cette réponse était déjà classée."))
    return redirect("api_pages:return_queue", box.pk)
