"""X-MSS-CODECDA: set when, and only when, CDA documents travel in an IHE_XDM archive (RULES.md §3)."""

import io
import zipfile

from mailboxes.compose import send_from_mailbox

CDA = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <code code="{code}" codeSystem="2.16.840.1.113883.6.1" displayName="Compte rendu"/>
  <recordTarget><patientRole><id root="1.2.250.1.213.1.4.8" extension="{ins}"/></patientRole></recordTarget>
</ClinicalDocument>"""


def xdm(*documents: tuple[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("METADATA.XML", "<Metadata/>")
        for index, (code, ins) in enumerate(documents, start=1):
            package.writestr(f"IHE_XDM/SUBSET01/DOC{index:04d}.XML", CDA.format(code=code, ins=ins))
    return buffer.getvalue()


def test_cda_codes_and_ins_are_announced_from_the_documents(cast):
    ins = cast.paul_patient.ins
    archive = xdm(("11490-0", ins), ("34112-3", ins))
    message = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="Lettre de liaison",
        text="Ci-joint.",
        attachments=[("IHE_XDM.zip", "application/zip", archive)],
    ).message
    assert message.x_mss_headers.get("x-mss-codecda") == "11490-0, 34112-3"
    assert message.x_mss_headers.get("x-mss-ins") == ins


def test_no_cda_archive_means_no_codecda_header_even_if_asked(cast):
    message = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="Compte rendu",
        text="Ci-joint.",
        attachments=[("compte-rendu.pdf", "application/pdf", b"%PDF-1.4 cr")],
        extra_headers={"X-MSS-CODECDA": "11490-0"},
    ).message
    assert "x-mss-codecda" not in message.x_mss_headers


def test_a_broken_archive_or_a_hostile_document_announces_nothing(cast):
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as package:
        package.writestr(
            "DOC0001.XML",
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>'
            '<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="&e;"/></ClinicalDocument>',
        )
    for archive in (b"PK\x03\x04 not really a zip", hostile.getvalue()):
        message = send_from_mailbox(
            cast.alice_box,
            cast.alice,
            to=[cast.charlie_box.address],
            subject="Archive",
            text="Ci-joint.",
            attachments=[("IHE_XDM.zip", "application/zip", archive)],
        ).message
        assert "x-mss-codecda" not in message.x_mss_headers
