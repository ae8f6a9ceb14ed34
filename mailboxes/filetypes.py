"""File types decided by content, never by name (RULES.md §3: formats a patient may send or keep).

A small signature check for the handful of formats the rules allow is more predictable than a
general-purpose guesser: a file named `.pdf` whose bytes are HTML is refused.
"""

from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"
RTF = "application/rtf"
TEXT = "text/plain"

EXTENSIONS = {
    PDF: {"pdf"},
    JPEG: {"jpg", "jpeg"},
    PNG: {"png"},
    TIFF: {"tif", "tiff"},
    RTF: {"rtf"},
    TEXT: {"txt"},
}
LABELS = {PDF: "PDF", JPEG: "JPG", PNG: "PNG", TIFF: "TIFF", RTF: "RTF", TEXT: "TXT"}

# What a patient may attach from their device to a reply.
PATIENT_REPLY_TYPES = frozenset({PDF, JPEG, RTF, TIFF, PNG})
# What a patient may keep in their record.
RECORD_TYPES = frozenset({PDF, JPEG, PNG, RTF, TIFF, TEXT})
# What previews in the page; the others download.
PREVIEWABLE = frozenset({PDF, JPEG, PNG})


def sniff(data: bytes) -> str | None:
    head = data[:16]
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith(b"{\\rtf"):
        return RTF
    sample = data[:8192]
    if b"\x00" not in sample:
        try:
            text = sample.decode("utf-8")
        except UnicodeDecodeError:
            return None
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype", "<html", "<?xml", "<svg", "<script")):
            return None  # markup is never accepted as plain text
        return TEXT
    return None


def check_upload(data: bytes, filename: str, allowed: frozenset[str], max_bytes: int) -> str:
    """The content type of an acceptable file, or a ValidationError saying what is wrong."""
    if len(data) == 0:
        raise ValidationError(_("Le fichier « %(f)s » est vide.") % {"f": filename})
    if len(data) > max_bytes:
        raise ValidationError(
            _("Le fichier « %(f)s » pèse %(s)s : la limite est de %(m)s.")
            % {"f": filename, "s": filesizeformat(len(data)), "m": filesizeformat(max_bytes)}
        )
    allowed_labels = ", ".join(sorted(LABELS[t] for t in allowed))
    content_type = sniff(data)
    if content_type not in allowed:
        raise ValidationError(
            _("Le fichier « %(f)s » n'est pas d'un format accepté. Formats acceptés : %(a)s.")
            % {"f": filename, "a": allowed_labels}
        )
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in EXTENSIONS[content_type]:
        raise ValidationError(
            _("Le contenu du fichier « %(f)s » ne correspond pas à son extension (contenu %(t)s).")
            % {"f": filename, "t": LABELS[content_type]}
        )
    return content_type
