"""CDA documents in an IHE_XDM archive and the MSSanté headers they call for (RULES.md §3).

`X-MSS-CODECDA` is set on a sent message when, and only when, it carries one or more CDA
documents inside an `IHE_XDM.zip` attachment; its value is the `code/@code` of each document's
header, comma-separated when there are several. `X-MSS-INS` carries the patient's INS found in
the documents (`recordTarget/patientRole/id` under the INS-NIR OID). Received messages keep
their `X-MSS-*` headers exactly as they came.
"""

import collections
import hashlib
import io
import logging
import xml.etree.ElementTree as ET  # noqa: S405 - parsed through mailboxes.safexml
import zipfile

from django.conf import settings

from mailboxes import safexml

log = logging.getLogger(__name__)

HL7 = "{urn:hl7-org:v3}"
INS_NIR_OID = "1.2.250.1.213.1.4.8"
XDM_NAME = "ihe_xdm.zip"
# An archive is read only within these bounds (a zip bomb stays a zip bomb, unread): at most
# MAX_MEMBERS members, and XDM_MAX_DECOMPRESSED_BYTES decompressed in all (the setting), counted
# on the bytes actually inflated, not on the sizes the archive declares.
MAX_MEMBERS = 200
CHUNK = 1024 * 1024


class ArchiveTooLarge(ValueError):
    """The archive inflates beyond XDM_MAX_DECOMPRESSED_BYTES (or has too many members)."""


def is_xdm_archive(filename: str) -> bool:
    return (filename or "").strip().lower() == XDM_NAME


def cda_facts(archive: bytes) -> tuple[list[str], list[str]]:
    """(CDA document codes, patient INS) found in an IHE_XDM archive; empty lists when none.
    ArchiveTooLarge when it would inflate beyond the limit. An archive is parsed once per
    process (the composer's size check and the send build the same message): the outcome is
    kept by the archive's SHA-256, never its bytes."""
    digest = hashlib.sha256(archive).digest()
    found = _FACTS.get(digest)
    if found is None:
        try:
            found = _facts(archive)
        except ArchiveTooLarge as exc:
            found = exc
        _FACTS[digest] = found
        while len(_FACTS) > FACTS_KEPT:
            _FACTS.popitem(last=False)
    if isinstance(found, ArchiveTooLarge):
        raise found
    codes, ins = found
    return list(codes), list(ins)


FACTS_KEPT = 64
_FACTS: collections.OrderedDict = collections.OrderedDict()


def _facts(archive: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    codes: list[str] = []
    ins: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as package:
            members = [m for m in package.infolist() if m.filename.lower().endswith(".xml")]
            check_declared_sizes(members)
            budget = settings.XDM_MAX_DECOMPRESSED_BYTES
            for member in members:
                if member.filename.upper().endswith("METADATA.XML"):
                    continue
                data = read_within(package, member, budget)
                budget -= len(data)
                try:
                    root = safexml.parse(data)
                except (ET.ParseError, safexml.UnsafeXML):
                    continue
                if root.tag != f"{HL7}ClinicalDocument":
                    continue
                code = root.find(f"{HL7}code")
                if code is not None and code.get("code") and code.get("code") not in codes:
                    codes.append(code.get("code"))
                for patient_id in root.iterfind(f"{HL7}recordTarget/{HL7}patientRole/{HL7}id"):
                    value = patient_id.get("extension", "")
                    if patient_id.get("root") == INS_NIR_OID and value and value not in ins:
                        ins.append(value)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, NotImplementedError):
        return (), ()
    return tuple(codes), tuple(ins)


def check_declared_sizes(members: list[zipfile.ZipInfo]) -> None:
    """Refuse at once, from the central directory, what announces too much."""
    declared = sum(m.file_size for m in members)
    if len(members) > MAX_MEMBERS or declared > settings.XDM_MAX_DECOMPRESSED_BYTES:
        log.warning("IHE_XDM archive refused: members=%s declared_bytes=%s", len(members), declared)
        raise ArchiveTooLarge(f"{len(members)} members, {declared} bytes declared")


def read_within(package: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int) -> bytes:
    """The member's bytes, inflated chunk by chunk; ArchiveTooLarge past the budget (an archive
    may lie about its sizes)."""
    parts, size = [], 0
    with package.open(member) as handle:
        while chunk := handle.read(CHUNK):
            size += len(chunk)
            if size > budget:
                log.warning("IHE_XDM archive refused: inflates beyond its declared sizes")
                raise ArchiveTooLarge("inflates beyond the limit")
            parts.append(chunk)
    return b"".join(parts)


def archive_problem(filename: str, data: bytes) -> str | None:
    """The French reason an attachment named IHE_XDM.zip cannot be sent, or None."""
    if not is_xdm_archive(filename):
        return None
    try:
        cda_facts(data)
    except ArchiveTooLarge:
        limit = settings.XDM_MAX_DECOMPRESSED_BYTES // (1024 * 1024)
        return (
            f"L'archive « {filename} » se décompresse en plus de {limit} Mo (ou compte plus de "
            f"{MAX_MEMBERS} documents) : elle n'est pas acceptée. Vérifiez le fichier produit par "
            "votre logiciel."
        )
    return None


def mss_headers_for(attachments) -> dict[str, str]:
    """The X-MSS-* headers a message with these (filename, content_type, data) attachments needs."""
    codes: list[str] = []
    ins: list[str] = []
    for filename, _content_type, data in attachments:
        if is_xdm_archive(filename):
            found_codes, found_ins = cda_facts(data)
            codes += [c for c in found_codes if c not in codes]
            ins += [i for i in found_ins if i not in ins]
    headers = {}
    if codes:
        headers["X-MSS-CODECDA"] = ", ".join(codes)
        if ins:
            headers["X-MSS-INS"] = ", ".join(ins)
    return headers
