"""Export and download of stored mail (issue 3 items 8 and 10; RULES.md §5 traceability).

Thin views: every object is fetched through `mailboxes.access` (404 when not the user's), the
file is streamed from Django storage (local folder or S3) through this process — never a public
or pre-signed URL — and each export or download leaves an audit event.
"""

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.views.decorators.http import require_GET

from audit.events import record
from audit.models import AuditEvent
from mailboxes import filetypes
from mailboxes.access import attachment_for_user, entry_for_user
from mailboxes.file_headers import download_headers, preview_headers
from mailboxes.store import open_raw

# Declared types a browser would run as a page or script: such a file downloads as opaque bytes.
ACTIVE_SUBTYPES = frozenset({"html", "xml", "javascript", "x-javascript", "ecmascript", "css", "x-shockwave-flash"})


def _download_type(declared: str) -> str:
    maintype, _, subtype = (declared or "").lower().partition("/")
    if not subtype or maintype == "multipart" or subtype in ACTIVE_SUBTYPES or subtype.endswith("+xml"):
        return "application/octet-stream"
    return f"{maintype}/{subtype}"


def _client_ip(request):
    return request.META.get("REMOTE_ADDR") or None


@login_required
@require_GET
def message_eml(request, entry_id):
    entry = entry_for_user(request.user, entry_id)
    message = entry.message
    response = FileResponse(
        open_raw(message),
        as_attachment=True,
        filename=f"message-{message.pk}.eml",
        content_type="message/rfc822",
    )
    download_headers(response)
    record(
        AuditEvent.Action.EXPORTED,
        actor=request.user,
        obj=message,
        mailbox_id=entry.mailbox_id,
        message_id=message.pk,
        ip=_client_ip(request),
    )
    return response


@login_required
@require_GET
def attachment_download(request, attachment_id):
    attachment, entry = attachment_for_user(request.user, attachment_id)
    handle = default_storage.open(attachment.file.name, "rb")
    inline_type = None
    if request.GET.get("inline") == "1":
        # The stored content type is what the sender declared: decide on the bytes themselves.
        sniffed = filetypes.sniff(handle.read(8192))
        handle.seek(0)
        if sniffed in filetypes.PREVIEWABLE:
            inline_type = sniffed
    response = FileResponse(
        handle,
        as_attachment=inline_type is None,
        filename=attachment.filename or f"piece-jointe-{attachment.pk}",
        content_type=inline_type or _download_type(attachment.content_type),
    )
    if inline_type:
        preview_headers(response)
    else:
        download_headers(response)
    record(
        AuditEvent.Action.DOWNLOADED,
        actor=request.user,
        obj=attachment,
        mailbox_id=entry.mailbox_id,
        message_id=attachment.message_id,
        detail={"inline": bool(inline_type)},
        ip=_client_ip(request),
    )
    return response
