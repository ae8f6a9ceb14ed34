"""The profile PDF (RULES.md §3: the patient replies with their medical profile as a PDF).

`ensure_profile_pdf` is the one way to get it: it hashes the profile's content (identity,
sections, measures and the layout itself), returns the stored PDF when the hash matches, and
otherwise renders with WeasyPrint and stores the file atomically (temporary file renamed into
place; one PUT on object storage), keeping the hash beside the file name on the Profile row.
The Celery task and the synchronous path run this same code.
"""

import functools
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import transaction
from django.template import loader
from django.utils import timezone

from health_record.models import Profile
from health_record.profile import SECTIONS, profile_data, profile_for_patient
from mailboxes.identifiers import ascii_slug

log = logging.getLogger(__name__)

TEMPLATE = "health_record/pdf/profile.html"
STYLESHEET = Path(settings.BASE_DIR) / "templates" / "health_record" / "pdf" / "profile.css"
# Bump when the rendering changes in a way the template files do not show (e.g. charts.py).
LAYOUT_VERSION = "2"


@functools.lru_cache(maxsize=1)
def _layout_digest() -> str:
    """A digest of the template and stylesheet: a new layout invalidates every cached PDF."""
    digest = hashlib.sha256(LAYOUT_VERSION.encode())
    for path in (Path(settings.BASE_DIR) / "templates" / TEMPLATE, STYLESHEET):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _stylesheet():
    """The parsed stylesheet, kept for the life of the process (parsing it costs every render)."""
    import weasyprint

    return weasyprint.CSS(filename=str(STYLESHEET))


def content_hash(data: dict) -> str:
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{_layout_digest()}\n{payload}".encode()).hexdigest()


def profile_context(data: dict, generated_at) -> dict:
    return {"p": data, "sections": {s.key: s for s in SECTIONS}, "generated_at": timezone.localtime(generated_at)}


def render_profile_html(data: dict, generated_at) -> str:
    return loader.render_to_string(TEMPLATE, profile_context(data, generated_at))


def _no_fetch(url, *args, **kwargs):
    """The PDF embeds everything it shows: WeasyPrint never fetches a URL (nor a local file)."""
    raise ValueError("no external resource in the profile PDF")


def render_pdf(data: dict, generated_at=None) -> bytes:
    """Render the profile PDF from `profile_data(...)` (no database access)."""
    import weasyprint

    html = render_profile_html(data, generated_at or timezone.now())
    document = weasyprint.HTML(string=html, base_url=str(settings.BASE_DIR), url_fetcher=_no_fetch)
    return document.write_pdf(stylesheets=[_stylesheet()])


def store_atomically(name: str, data: bytes, storage=None) -> str:
    """Write `data` under `name` so that a reader never sees a partial file."""
    storage = storage or default_storage
    if isinstance(storage, FileSystemStorage):
        path = Path(storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pdf")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name
    # Object storage: one PUT is atomic (readers get the old object or the whole new one). The
    # name carries the content hash, so an existing object already holds this profile.
    if storage.exists(name):
        return name
    return storage.save(name, ContentFile(data))


def pdf_filename(patient) -> str:
    last = ascii_slug(patient.usage_name or patient.birth_name) or "patient"
    first = ascii_slug(patient.first_name) or ""
    return f"profil-medical-{first}-{last}.pdf".replace("--", "-")


def ensure_profile_pdf(patient) -> tuple[str, bytes, bool]:
    """The stored PDF name, its bytes, and whether it had to be rendered now."""
    data = profile_data(patient)
    digest = content_hash(data)
    profile = profile_for_patient(patient)
    if profile.pdf_hash == digest and profile.pdf_name:
        try:
            with default_storage.open(profile.pdf_name, "rb") as handle:
                return profile.pdf_name, handle.read(), False
        except FileNotFoundError:
            log.warning("profile %s: cached PDF missing, rendering again", profile.pk)
    pdf = render_pdf(data)
    name = store_atomically(f"profiles/{patient.pk}/{digest}.pdf", pdf)
    old_name = profile.pdf_name
    Profile.objects.filter(pk=profile.pk).update(pdf_name=name, pdf_hash=digest, pdf_rendered_at=timezone.now())
    if old_name and old_name != name:
        transaction.on_commit(lambda: default_storage.delete(old_name))
    log.info("profile %s: PDF rendered (%d bytes)", profile.pk, len(pdf))
    return name, pdf, True
