"""Export as .eml and attachment downloads: byte-identical, access-checked, audited."""

from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import send_message
from mailboxes.models import Attachment, Entry
from tests.core.conftest import PEER_SENDER, raw_message

PDF = b"%PDF-1.4\n" + b"0" * 2000
HTML_AS_PDF = b"<html><script>alert(1)</script></html>"


def _inbound(cast):
    raw = (
        raw_message(attachments=[("irm.pdf", "application/pdf", PDF), ("piege.pdf", "application/pdf", HTML_AS_PDF)])
        + b"\r\n"
    )  # trailing bytes that a re-serialisation would not reproduce
    result = send_message(
        raw,
        envelope_from=PEER_SENDER,
        envelope_to=[cast.alice_box.address, cast.cardio.address],
        source="smtp",
    )
    return raw, result.message


def _content(response):
    return b"".join(response.streaming_content)


def test_eml_export_is_the_original_bytes(cast, client):
    raw, message = _inbound(cast)
    entry = Entry.objects.get(mailbox=cast.alice_box, message=message)
    client.force_login(cast.alice)
    response = client.get(reverse("mailboxes:message_eml", args=[entry.pk]))
    assert response.status_code == 200
    assert _content(response) == raw
    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"].startswith("attachment;")
    assert (
        AuditEvent.objects.filter(
            action="message.exported", actor=cast.alice, message_id=message.pk, mailbox_id=cast.alice_box.pk
        ).count()
        == 1
    )


def test_sent_message_export_from_the_sent_folder(cast, client):
    sent = send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="S", text="t")
    entry = Entry.objects.get(mailbox=cast.alice_box, message=sent.message)
    client.force_login(cast.alice)
    assert client.get(reverse("mailboxes:message_eml", args=[entry.pk])).status_code == 200


def test_export_and_download_are_isolated(cast, client):
    _, message = _inbound(cast)
    alice_entry = Entry.objects.get(mailbox=cast.alice_box, message=message)
    cardio_entry = Entry.objects.get(mailbox=cast.cardio, message=message)
    attachment = Attachment.objects.get(message=message, filename="irm.pdf")
    eml = reverse("mailboxes:message_eml", args=[alice_entry.pk])
    download = reverse("mailboxes:attachment_download", args=[attachment.pk])

    client.force_login(cast.charlie)  # an unrelated doctor
    assert client.get(eml).status_code == 404
    assert client.get(download).status_code == 404
    client.force_login(cast.paul)  # a patient
    assert client.get(eml).status_code == 404
    assert client.get(download).status_code == 404
    client.force_login(cast.bob)  # the secretary: member of cardiologie@, not alice's own box
    assert client.get(eml).status_code == 404
    assert client.get(reverse("mailboxes:message_eml", args=[cardio_entry.pk])).status_code == 200
    assert client.get(download).status_code == 200  # reached through cardiologie@
    assert client.get(reverse("mailboxes:attachment_download", args=[999999])).status_code == 404
    client.logout()
    assert client.get(download).status_code == 302  # to the login page
    assert not AuditEvent.objects.filter(action="attachment.downloaded", actor__in=[cast.charlie, cast.paul]).exists()


def test_download_is_an_attachment_and_inline_only_for_real_previewable_types(cast, client):
    _, message = _inbound(cast)
    pdf = Attachment.objects.get(message=message, filename="irm.pdf")
    trap = Attachment.objects.get(message=message, filename="piege.pdf")
    client.force_login(cast.alice)
    url = reverse("mailboxes:attachment_download", args=[pdf.pk])

    response = client.get(url)
    assert _content(response) == PDF
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"

    response = client.get(url + "?inline=1")
    assert response["Content-Disposition"].startswith("inline;")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Security-Policy"].startswith("sandbox")

    # Declared a PDF, but its bytes are HTML: never shown inline.
    response = client.get(reverse("mailboxes:attachment_download", args=[trap.pk]) + "?inline=1")
    assert response["Content-Disposition"].startswith("attachment;")
    assert _content(response) == HTML_AS_PDF
    events = AuditEvent.objects.filter(action="attachment.downloaded", actor=cast.alice, message_id=message.pk)
    assert events.count() == 3 and {e.object_id for e in events} == {str(pdf.pk), str(trap.pk)}


def test_a_download_declared_as_a_page_or_script_is_served_as_opaque_bytes(cast, client):
    """An attachment declared text/html or SVG is never served with that type, even as a download."""
    page = b"<html><body><script>alert(document.cookie)</script></body></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    raw = raw_message(attachments=[("page.html", "text/html", page), ("logo.svg", "image/svg+xml", svg)])
    message = send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp").message
    client.force_login(cast.alice)
    for attachment in Attachment.objects.filter(message=message):
        for query in ("", "?inline=1"):
            response = client.get(reverse("mailboxes:attachment_download", args=[attachment.pk]) + query)
            assert response.status_code == 200
            assert response["Content-Type"] == "application/octet-stream"
            assert response["Content-Disposition"].startswith("attachment;")
            assert response["Content-Security-Policy"].startswith("sandbox")
            assert _content(response) in (page, svg)


def test_not_yours_and_does_not_exist_cost_the_same_single_query(cast):
    """No timing oracle on attachment ids: a missing attachment and another user's attachment
    are refused after the same one access-checked query."""
    import pytest
    from django.db import connection
    from django.http import Http404
    from django.test.utils import CaptureQueriesContext

    from mailboxes.access import attachment_for_user

    _, message = _inbound(cast)
    attachment = Attachment.objects.filter(message=message).first()
    counts = []
    for attachment_id in (attachment.pk, 999999):
        with CaptureQueriesContext(connection) as queries, pytest.raises(Http404):
            attachment_for_user(cast.charlie, attachment_id)
        counts.append(len(queries))
    assert counts == [1, 1]
    found, entry = attachment_for_user(cast.bob, attachment.pk)
    assert found == attachment and entry.mailbox_id == cast.cardio.pk
