from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect


@login_required
def home(request):
    """After login: a patient lands on their inbox, everyone else on their mailboxes."""
    if request.user.is_patient:
        return redirect("patients:inbox")
    return redirect("webmail:home")


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
