"""The response headers of a stored file served to a browser (attachments of messages, documents
of the patient's record): one function for a preview, one for a download, so every place that
serves a file says the same thing.

A preview is shown as a document of its own in a same-origin frame, sandboxed by its CSP: no
script, form or plugin rights even when the bytes carry some (a PDF with JavaScript or an HTML
tail is a valid PDF). A download is never rendered; should a browser try, it runs nothing.
"""

from django.http import HttpResponseBase

PREVIEW_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
DOWNLOAD_CSP = "sandbox; default-src 'none'"


def _common(response: HttpResponseBase) -> HttpResponseBase:
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def preview_headers(response: HttpResponseBase) -> HttpResponseBase:
    """Headers of a file shown inline (pdf, jpg, png decided on its bytes)."""
    if not response.has_header("Content-Disposition"):
        response["Content-Disposition"] = "inline"
    response["Content-Security-Policy"] = PREVIEW_CSP
    response["X-Frame-Options"] = "SAMEORIGIN"
    return _common(response)


def download_headers(response: HttpResponseBase) -> HttpResponseBase:
    """Headers of a file saved by the browser, never rendered."""
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    return _common(response)
