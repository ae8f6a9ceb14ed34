"""The whole patient story in a browser (RULES.md §3): a professional writes asking for a read
receipt → the patient is notified by e-mail → opens the message (the MDN lands in the pro's box)
→ replies with a PDF from the device → the professional closes the exchange with [FIN] → the
patient sees the thread end with the end-of-exchange marker, the banner and no reply button."""

import re

import pytest
from django.core import mail

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Delivery, Entry, Folder, Message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def sign_in(page, live_server, username, password, next_url=None):
    page.goto(next_url or f"{live_server.url}/comptes/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_patient_story(cast, page, browser, live_server, password, settings):
    settings.SITE_URL = live_server.url

    # 1. Dr Martin writes to Paul and asks for a read receipt.
    sent = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address],
        subject="Préparation de votre coloscopie",
        text="Bonjour,\nmerci de me renvoyer votre bilan sanguin.\n",
        request_mdn=True,
    ).message

    # 2. Paul is notified on his personal address, with only a link.
    assert len(mail.outbox) == 1
    notification = mail.outbox[0]
    assert notification.to == ["paul.perso@exemple.org"]
    assert "coloscopie" not in notification.body and "Martin" not in notification.body
    link = re.search(r"https?://\S+/patient/", notification.body).group(0)

    # 3. He follows the link, signs in, opens the message: the MDN goes back to Dr Martin.
    sign_in(page, live_server, cast.paul.username, password, next_url=link)
    assert page.url.rstrip("/").endswith("/patient")
    page.get_by_test_id("conversation-link").first.click()
    # The exchange is one thread page: showing the message is opening it.
    assert page.get_by_test_id("sender-name").first.inner_text() == "Dr Alice MARTIN"
    mdn = Message.objects.filter(entries__mailbox=cast.alice_box, is_report=True)
    assert mdn.count() == 1
    assert Delivery.objects.get(message=sent, address=cast.paul_patient.address).status == Delivery.Status.READ

    # 4. He replies with a PDF from his device.
    page.get_by_test_id("reply-button").click()
    page.fill("textarea[name=text]", "Voici mon bilan sanguin.")
    page.set_input_files(
        "input[type=file]", files=[{"name": "bilan.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.get_by_test_id("send-button").click()
    page.wait_for_load_state("networkidle")
    assert "Votre message a été envoyé" in page.content()
    reply = Entry.objects.get(mailbox=cast.alice_box, folder__role=Folder.Role.INBOX, message__is_report=False).message
    assert reply.in_reply_to == sent.message_id
    assert [a.filename for a in reply.attachments.all()] == ["bilan.pdf"]

    # 5. Dr Martin closes the exchange from her side ([FIN]).
    pro_context = browser.new_context()
    pro_page = pro_context.new_page()
    pro_page.set_default_timeout(5000)
    sign_in(pro_page, live_server, "alice", password)
    pro_page.goto(
        f"{live_server.url}/patient/pro/echange/{cast.alice_box.pk}/{cast.paul_patient.pk}/cloturer?next=/pro/"
    )
    assert "Paul LAMBERT" in pro_page.content()
    pro_page.click("button[type=submit].btn-danger")
    pro_page.wait_for_load_state("networkidle")
    pro_context.close()
    assert Message.objects.filter(sender_mailbox=cast.alice_box, subject="[FIN]").exists()

    # 6. Paul sees the banner, and no message of Dr Martin offers a reply any more.
    page.goto(f"{live_server.url}/patient/")
    page.get_by_test_id("conversation-link").first.click()
    banner = page.get_by_test_id("closed-banner")
    assert "Vous ne pouvez plus répondre : Dr Alice MARTIN a clôturé cet échange" in banner.inner_text()
    assert page.get_by_test_id("reply-button").count() == 0
    # The thread reads oldest first: the question, his reply, then the end of the exchange.
    assert page.get_by_test_id("thread-message").count() == 2
    end = page.get_by_test_id("end-of-exchange")
    assert end.is_visible() and "Fin de l’échange" in end.inner_text() and "[FIN]" not in page.inner_text("main")
    for entry in Entry.objects.filter(mailbox=cast.paul_box, folder__role=Folder.Role.INBOX):
        page.goto(f"{live_server.url}/patient/message/{entry.pk}/")
        assert page.get_by_test_id("reply-button").count() == 0
