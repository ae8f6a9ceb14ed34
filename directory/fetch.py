"""Where the scheduled import gets the extract: `DIRECTORY_IMPORT_SOURCE`, a local path (put
there by whatever fetches it) or an https:// URL downloaded to a temporary file first (size
capped by DIRECTORY_DOWNLOAD_MAX_BYTES, certificate checked, CA bundle settable)."""

from __future__ import annotations

import http.client
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

from directory.importer import import_extract, record_failure


class SourceError(RuntimeError):
    pass


def import_from_source(source: str | None = None, *, force: bool = False):
    """Import `source` (a path or an https:// URL; by default the configured one); a source that
    cannot be read is recorded as a failed run."""
    if source is None:
        source = settings.DIRECTORY_IMPORT_SOURCE or ""
    source = source.strip()
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
    """Copy `url` to `path`; a transfer that ends before the announced length is a failure (a
    cut at a line end would otherwise look like a well-formed, shorter extract)."""
    context = ssl.create_default_context(cafile=settings.DIRECTORY_IMPORT_CA_FILE or None)
    limit = settings.DIRECTORY_DOWNLOAD_MAX_BYTES
    try:
        with urllib.request.urlopen(url, timeout=60, context=context) as response, open(path, "wb") as out:  # noqa: S310 - https only
            announced = response.headers.get("Content-Length")
            copied = 0
            while chunk := response.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise SourceError(f"Téléchargement interrompu : plus de {limit} octets.")
                out.write(chunk)
            if announced and announced.isdigit() and copied != int(announced):
                raise SourceError(
                    f"Téléchargement interrompu : {copied} octets reçus sur {announced} annoncés ; l'annuaire est inchangé."
                )
    except urllib.error.HTTPError as exc:
        raise SourceError(f"Téléchargement impossible : le serveur a répondu HTTP {exc.code}.") from None
    except http.client.IncompleteRead as exc:
        raise SourceError(
            f"Téléchargement interrompu : {len(exc.partial)} octets reçus ; l'annuaire est inchangé."
        ) from None
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        raise SourceError(f"Téléchargement impossible ({type(exc).__name__}) : {getattr(exc, 'reason', exc)}") from None
