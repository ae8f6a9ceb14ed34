from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from mailboxes.access import mailboxes_for_user


@login_required
def home(request):
    mailboxes = mailboxes_for_user(request.user).exclude(kind="PAT")
    return render(request, "webmail/home.html", {"mailboxes": mailboxes})
