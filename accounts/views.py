from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect


@login_required
def home(request):
    """After login: a patient lands on their inbox, an administrator (staff) on the operations
    dashboard, everyone else on their mailboxes."""
    if request.user.is_patient:
        return redirect("patients:inbox")
    if request.user.is_staff:
        return redirect("operations:dashboard")
    return redirect("webmail:home")
