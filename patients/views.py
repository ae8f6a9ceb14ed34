from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from mailboxes.access import mailboxes_for_user


@login_required
def inbox(request):
    mailbox = mailboxes_for_user(request.user).filter(kind="PAT").first()
    if mailbox is None:
        raise Http404("Aucune messagerie patient pour ce compte")
    return render(request, "patients/inbox.html", {"mailbox": mailbox})
