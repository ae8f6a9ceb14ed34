"""The floor of the webmail list benchmark: a bare Django view that renders the same 50 rows
from one indexed query with a plain template. Bench-only (bench/webmail_urls.py)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from mailboxes.models import Entry


@login_required
def floor(request, folder_id):
    rows = list(
        Entry.objects.filter(folder_id=folder_id)
        .select_related("message")
        .only("id", "received_at", "seen", "message__from_name", "message__from_address", "message__subject")
        .order_by("-received_at", "-id")[:50]
    )
    return render(request, "webmail_floor.html", {"rows": rows})
