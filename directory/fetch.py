"""Where the scheduled import gets the extract: `DIRECTORY_IMPORT_SOURCE`, a local path (put
there by whatever fetches it) or an https:// URL downloaded to a temporary file first (size
capped by DIRECTORY_DOWNLOAD_MAX_BYTES, certificate checked, CA bundle settable)."""

from __future__ import annotations

import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

from directory.importer import import_extract, record_failure


class SourceError(RuntimeError):
    pass


def import_from_source(*, force: bool = False):
    """Import the configured source; a source that cannot be read is recorded as a failed run."""
    source = (settings.DIRECTORY_IMPORT_SOURCE or "").strip()
    try:
        return _import(source, force)
    except SourceError as exc:
        record_failure(source, str(exc))
        raise


def _import(source: str, force: bool):
    if not source:
        raise SourceError("Aucune source configurée : réglez DIRECTORY_IMPORT_SOURCE (chemin ou URL https://).")
    if source.startswith("https://"):
        with tempfile.TemporaryDirectory(prefix="annuaire-") as folder:
            path = Path(folder) / "extraction"
            download(source, path)
            return import_extract(path, source=source, force=force)
    if "://" in source:
        raise SourceError("La source doit être un chemin local ou une URL https:// (le transport en clair est refusé).")
    if not Path(source).is_file():
        raise SourceError(f"Fichier introuvable : {source}")
    return import_extract(source, source=source, force=force)


def download(url: str, path: Path) -> None:
    context = ssl.create_default_context(cafile=settings.DIRECTORY_IMPORT_CA_FILE or None)
    limit = settings.DIRECTORY_DOWNLOAD_MAX_BYTES
    try:
        with urllib.request.urlopen(url, timeout=60, context=context) as response, open(path, "wb") as out:  # noqa: S310 - https only
            copied = 0
            while chunk := response.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise SourceError(f"Téléchargement interrompu : plus de {limit} octets.")
                out.write(chunk)
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        raise SourceError(f"Téléchargement impossible ({type(exc).__name__}) : {getattr(exc, 'reason', exc)}") from None
