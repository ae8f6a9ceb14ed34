"""CDA documents in an IHE_XDM archive and the MSSanté headers they call for (RULES.md §3).

`X-MSS-CODECDA` is set on a sent message when, and only when, it carries one or more CDA
documents inside an `IHE_XDM.zip` attachment; its value is the `code/@code` of each document's
header, comma-separated when there are several. `X-MSS-INS` carries the patient's INS found in
the documents (`recordTarget/patientRole/id` under the INS-NIR OID). Received messages keep
their `X-MSS-*` headers exactly as they came.
"""

import io
import xml.etree.ElementTree as ET  # noqa: S405 - parsed through mailboxes.safexml
import zipfile

from mailboxes import safexml

HL7 = "{urn:hl7-org:v3}"
INS_NIR_OID = "1.2.250.1.213.1.4.8"
XDM_NAME = "ihe_xdm.zip"
# An archive is read only within these bounds (a zip bomb stays a zip bomb, unread).
MAX_MEMBERS = 200
MAX_MEMBER_BYTES = 20 * 1024 * 1024


def is_xdm_archive(filename: str) -> bool:
    return (filename or "").strip().lower() == XDM_NAME


def cda_facts(archive: bytes) -> tuple[list[str], list[str]]:
    """(CDA document codes, patient INS) found in an IHE_XDM archive; empty lists when none."""
    codes: list[str] = []
    ins: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as package:
            members = [m for m in package.infolist() if m.filename.lower().endswith(".xml")][:MAX_MEMBERS]
            for member in members:
                if member.file_size > MAX_MEMBER_BYTES or member.filename.upper().endswith("METADATA.XML"):
                    continue
                try:
                    root = safexml.parse(package.read(member))
                except (ET.ParseError, safexml.UnsafeXML, zipfile.BadZipFile, RuntimeError):
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
    except (zipfile.BadZipFile, OSError):
        return [], []
    return codes, ins


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
