"""Patient messaging with another operator, through a real Postfix as that operator's MTA.

A professional of `autre-operateur.mssante.fr` writes with smtplib into that operator's Postfix;
Postfix relays mail for our domains (the hosted one and the patient domain) to our SMTP gateway
and delivers its own domain's mail into a Maildir per box. Our relay sends everything for the
peer to that Postfix. What the tests assert on is what an outsider sees: the remote
professional's Maildir (what Postfix finally delivered, with its `Return-Path:`), and the
patient's pages (Django's test client logged in as the patient).

Flows (RULES.md §3 and §7): automatic returns (closed space, unknown and malformed INS), a
blocked professional, the patient's reply, the read receipt, the test address, closing with
`[FIN]` and reopening, and nothing automatic answering an automatic message or the null sender.
"""

import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

import pytest
from django.urls import reverse

from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import DeliveryRefused
from mailboxes.models import Entry, Message, Outbox
from patients import policy as patient_policy
from patients.models import Patient, PendingReturn
from patients.sending import send_from_patient
from tests.factories import make_ins
from tests.transport.conftest import wait_until
from tests.transport.postfix import mailbox, maillog, other_operator, queue_is_empty

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PRO_LOCAL = "dr.externe"
PRO = f"{PRO_LOCAL}@{PEER}"


@pytest.fixture
def peer(cast, settings, start_gateway):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.RELAY_RETRY_BASE_SECONDS = 0
    options = {"also_ours": (settings.PATIENT_DOMAIN,), "maildirs": (PRO_LOCAL,)}
    with other_operator(cast, settings, start_gateway, PEER, **options) as postfix:
        settings.RELAY_HOST, settings.RELAY_PORT, settings.RELAY_USE_TLS = "127.0.0.1", postfix.port, False
        yield postfix


def write(
    peer,
    to: str,
    subject: str,
    text: str,
    *,
    sender: str = PRO,
    headers: dict | None = None,
    from_header: str = f"Dr Jeanne Externe <{PRO}>",
    **extra,
) -> EmailMessage:
    """The remote professional's mail client submits to its operator's Postfix."""
    mail = EmailMessage()
    mail["From"] = from_header
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain=PEER)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(text)
    with smtplib.SMTP("127.0.0.1", peer.port, timeout=10) as client:
        client.sendmail(sender, [to], mail.as_bytes())
    return mail


def received(peer, count: int = 1) -> list:
    """The remote professional's box once it holds `count` messages, parsed."""
    raws = mailbox(peer, PRO_LOCAL)
    if count:
        raws = wait_until(lambda: len(mailbox(peer, PRO_LOCAL)) >= count and mailbox(peer, PRO_LOCAL), timeout=30)
    return [message_from_bytes(raw, policy=policy.default) for raw in raws]


def patient_entries(patient: Patient):
    return Entry.objects.filter(mailbox=patient.mailbox)


def delivered_to_patient(patient: Patient, count: int = 1) -> list[Entry]:
    return wait_until(
        lambda: (
            patient_entries(patient).filter(folder__role="inbox").count() >= count
            and list(patient_entries(patient).filter(folder__role="inbox").order_by("id"))
        ),
        timeout=30,
    )


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def assert_automatic_answer_to(mail, original: EmailMessage) -> None:
    assert mail["Return-Path"] == "<>"  # Postfix's final delivery: the null envelope sender
    assert mail["Auto-Submitted"] == "auto-replied"
    assert parseaddr(mail["From"])[1] == patient_policy.system_address()
    assert mail["In-Reply-To"].strip() == original["Message-ID"]
    assert original["Message-ID"] in mail["References"]
    assert mail["Message-ID"]


@pytest.mark.parametrize("case", ["closed", "unknown", "malformed", "not_qualified"])
def test_a_refused_patient_address_sends_the_automatic_return_back_through_postfix(cast, peer, settings, case):
    if case == "not_qualified":
        settings.INS_REQUIRE_QUALIFIED = True
        Patient.objects.filter(pk=cast.paul_patient.pk).update(ins_qualified=False)
        address, code = cast.paul_patient.address, "ins_not_qualified"
    elif case == "closed":
        Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
        address, code = cast.paul_patient.address, "space_closed"
    elif case == "unknown":
        address, code = f"{make_ins(seq=987654)}@{settings.PATIENT_DOMAIN}", "patient_not_found"
    else:
        ins = make_ins(seq=987654)
        address, code = f"{ins[:-2]}{(int(ins[-2:]) + 1) % 97:02d}@{settings.PATIENT_DOMAIN}", "wrong_ins"
    refusal = patient_policy.REFUSALS[code]
    original = write(peer, address, "SENTINELLE-OBJET bilan", "SENTINELLE-CORPS résultats.")
    [ret] = received(peer)
    assert_automatic_answer_to(ret, original)
    assert ret["Subject"] == "Message non distribué : retour automatique de Mon espace santé"
    text = text_of(ret)
    # The policy's own French text for that refusal: what happened and what to do.
    assert f"Ce qui s'est passé : {refusal.happened}" in text and f"Que faire : {refusal.to_do}" in text
    assert address in text
    assert "SENTINELLE" not in ret.as_string()
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()
    # Postfix got our 250 (no bounce of its own on top of our return).
    assert "status=sent" in maillog(peer) and "status=bounced" not in maillog(peer)


def relay_settled(peer) -> bool:
    """Our relay has nothing left to send and Postfix has nothing left in its queue."""
    return not Outbox.objects.exclude(status__in=[Outbox.Status.SENT, Outbox.Status.FAILED]).exists() and (
        queue_is_empty(peer)
    )


def test_the_patients_reply_reaches_the_remote_professional_threaded(cast, peer, client):
    paul = cast.paul_patient
    # A patient does not write first: nothing leaves for the remote professional.
    with pytest.raises(DeliveryRefused) as refused:
        send_from_patient(paul, cast.paul, to=PRO, subject="Question", text="Bonjour")
    assert refused.value.code == "patient_may_not_initiate"
    assert not Outbox.objects.exists()
    original = write(peer, paul.address, "Préparation de l'examen", "Bonjour, à jeun la veille.")
    [entry] = delivered_to_patient(paul)
    with entry.message.raw.open("rb") as stored:  # RULES.md §7: our trace, behind the peer's own
        head = stored.read().split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith(f"Return-Path: <{PRO}>\r\nReceived: from {PEER} ([127.0.0.1])")
    assert "by autre-operateur.mssante.fr (Postfix)" in head
    client.force_login(cast.paul)
    page = client.get(reverse("patients:message", args=[entry.pk])).content.decode()
    assert "Dr Jeanne Externe" in page and PRO not in page  # the name, never the raw address
    response = client.post(reverse("patients:reply", args=[entry.pk]), {"text": "Merci, c'est noté."})
    assert response.status_code == 302
    [reply] = received(peer)
    assert parseaddr(reply["From"])[1] == paul.address
    assert reply["Return-Path"] == f"<{paul.address}>"
    assert reply["In-Reply-To"].strip() == original["Message-ID"]
    assert reply["References"].split()[-1] == original["Message-ID"]
    assert reply["Message-ID"] and reply["Message-ID"] != original["Message-ID"]
    assert reply["Subject"].startswith("RE") and "Préparation de l'examen" in reply["Subject"]
    assert "Merci, c'est noté." in text_of(reply)


def test_the_reply_to_a_remote_applicative_box_reaches_the_box_its_reply_to_names(cast, peer, client):
    """RULES.md §6: the hospital software of another operator sends from an applicative box
    and names the service's box in `Reply-To:`; the patient's reply goes there, through Postfix."""
    paul = cast.paul_patient
    software = f"envois-automatiques@{PEER}"
    original = write(
        peer,
        paul.address,
        "Convocation",
        "Votre rendez-vous est fixé.",
        sender=software,
        from_header=f"CH Externe <{software}>",
        headers={"Reply-To": f"Dr Jeanne Externe <{PRO}>"},
    )
    [entry] = delivered_to_patient(paul)
    client.force_login(cast.paul)
    response = client.post(reverse("patients:reply", args=[entry.pk]), {"text": "Je serai présent."})
    assert response.status_code == 302
    [reply] = received(peer)
    assert parseaddr(reply["To"])[1] == PRO
    assert reply["In-Reply-To"].strip() == original["Message-ID"]
    assert "Je serai présent." in text_of(reply)


def test_the_read_receipt_reaches_the_remote_professional_when_the_patient_opens(cast, peer, client):
    paul = cast.paul_patient
    original = write(peer, paul.address, "Résultats", "Vos résultats.", headers={"Disposition-Notification-To": PRO})
    [entry] = delivered_to_patient(paul)
    assert mailbox(peer, PRO_LOCAL) == []  # delivered is not read: no receipt yet
    client.force_login(cast.paul)
    assert client.get(reverse("patients:message", args=[entry.pk])).status_code == 200
    [mdn] = received(peer)
    assert mdn["Return-Path"] == "<>"
    assert mdn.get_content_type() == "multipart/report"
    assert mdn.get_param("report-type") == "disposition-notification"
    assert mdn["In-Reply-To"].strip() == original["Message-ID"]
    [report] = [part for part in mdn.walk() if part.get_content_type() == "message/disposition-notification"]
    fields = report.get_payload()[0] if report.is_multipart() else message_from_bytes(report.get_payload(decode=True))
    assert fields["Original-Message-ID"].strip() == original["Message-ID"]
    assert paul.address in fields["Final-Recipient"]
    assert fields["Disposition"].replace(" ", "") == "manual-action/MDN-sent-automatically;displayed"
    # Opening it again, or the whole conversation, sends no second receipt.
    client.get(reverse("patients:message", args=[entry.pk]))
    client.get(reverse("patients:conversation", args=[entry.pk]))
    wait_until(lambda: relay_settled(peer), timeout=30)
    assert len(mailbox(peer, PRO_LOCAL)) == 1


def test_the_test_address_answers_through_postfix_only_when_subject_and_body_say_test(cast, peer):
    address = patient_policy.test_address()
    write(peer, address, "Essai TEST", "Un message sans le mot.")
    write(peer, address, "Bonjour", "Ceci est un TEST.")
    original = write(peer, address, "TEST de messagerie", "Ceci est un TEST de notre opérateur.")
    [answer] = received(peer)
    assert_automatic_answer_to(answer, original)
    assert "a bien été reçu" in text_of(answer)
    # The two other messages were taken in by our gateway and answered by nothing.
    box = patient_policy.ensure_test_mailbox()
    wait_until(lambda: Entry.objects.filter(mailbox=box).count() == 3, timeout=30)
    wait_until(lambda: relay_settled(peer), timeout=30)
    assert len(mailbox(peer, PRO_LOCAL)) == 1 and PendingReturn.objects.count() == 1


def test_fin_closes_the_exchange_for_the_patient_and_a_later_message_reopens_it(cast, peer, client):
    paul = cast.paul_patient
    write(peer, paul.address, "Suivi", "Bonjour, comment allez-vous ?")
    [first] = delivered_to_patient(paul)
    write(peer, paul.address, "[FIN]", "Fin de la prise en charge.")
    delivered_to_patient(paul, 2)
    client.force_login(cast.paul)
    page = client.get(reverse("patients:message", args=[first.pk])).content.decode()
    assert "Vous ne pouvez plus répondre" in page and "Dr Jeanne Externe a clôturé cet échange" in page
    response = client.post(reverse("patients:reply", args=[first.pk]), {"text": "Encore une question."}, follow=True)
    assert "Vous ne pouvez pas répondre à ce message." in response.content.decode()
    assert not Outbox.objects.exists()
    # A new episode of care: the professional writes again, the patient may answer.
    write(peer, paul.address, "Nouvelle consultation", "Bonjour, un nouveau rendez-vous.")
    [*_, latest] = delivered_to_patient(paul, 3)
    page = client.get(reverse("patients:message", args=[latest.pk])).content.decode()
    assert "Vous ne pouvez plus répondre" not in page
    assert client.post(reverse("patients:reply", args=[latest.pk]), {"text": "Merci."}).status_code == 302
    [reply] = received(peer)
    assert parseaddr(reply["From"])[1] == paul.address and "Merci." in text_of(reply)


@pytest.mark.parametrize("case", ["auto-submitted", "null-sender"])
def test_nothing_automatic_answers_an_automatic_message_or_the_null_sender(cast, peer, case):
    paul = cast.paul_patient
    Patient.objects.filter(pk=paul.pk).update(space_state=Patient.SpaceState.CLOSED)
    if case == "auto-submitted":
        write(peer, paul.address, "Absence", "Je suis absente.", headers={"Auto-Submitted": "auto-replied"})
    else:
        write(peer, paul.address, "Rapport", "Rapport de remise.", sender="")
    # Our gateway refused it (Postfix logged the refusal) and both queues are settled.
    wait_until(lambda: "status=bounced" in maillog(peer) and relay_settled(peer), timeout=30)
    assert "Aucun retour automatique" in maillog(peer) or case == "null-sender"
    assert not PendingReturn.objects.exists() and not Outbox.objects.exists()
    assert not Message.objects.filter(from_address=patient_policy.system_address()).exists()
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()
    # What the remote box holds is at most its own MTA's report, never a return from us.
    for mail in received(peer, 0):
        assert parseaddr(mail["From"])[1] != patient_policy.system_address()
        assert mail.get_content_type() == "multipart/report"
        assert mail.get_param("report-type") == "delivery-status"
    assert len(mailbox(peer, PRO_LOCAL)) == (1 if case == "auto-submitted" else 0)


def test_a_professional_of_another_operator_blocked_by_the_patient_gets_non_distribue(cast, peer, client):
    """RULES.md §3: the patient may block chosen professionals, whatever operator hosts them.
    The blocked one gets what a blocked hosted box gets: the short « Message non distribué. »
    (here as its own MTA's report of our refusal), no automatic return, no word of a block."""
    paul = cast.paul_patient
    write(peer, paul.address, "Suivi", "Bonjour.")
    [entry] = delivered_to_patient(paul)
    client.force_login(cast.paul)
    page = client.get(reverse("patients:conversation", args=[entry.pk])).content.decode()
    assert "Ne plus recevoir de messages de ce correspondant" in page
    settings_page = client.get(reverse("patients:settings")).content.decode()
    assert "Bloquer Dr Jeanne Externe" in settings_page and PRO not in settings_page
    response = client.post(reverse("patients:block_correspondent", args=[entry.pk]), {"confirm": "on"})
    assert response.status_code == 302
    assert "Débloquer Dr Jeanne Externe" in client.get(reverse("patients:settings")).content.decode()

    original = write(peer, paul.address, "Nouveau message", "SENTINELLE-CORPS")
    [report] = received(peer)
    assert report["Return-Path"] == "<>"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    text = report.as_string()
    assert "Message non distribu" in text and original["Message-ID"] in text
    assert "bloqu" not in text.lower() and "retour automatique" not in text
    wait_until(lambda: relay_settled(peer), timeout=30)
    assert patient_entries(paul).filter(folder__role="inbox").count() == 1
    assert not PendingReturn.objects.exists()


def test_the_patient_may_open_a_new_conversation_with_a_remote_professional_who_wrote(cast, peer, client):
    """RULES.md §3: a patient may open a new conversation with a pro who has written to them
    before, unless that pro closed the exchange, whatever operator hosts that pro."""
    paul = cast.paul_patient
    client.force_login(cast.paul)
    send_from_mailbox(cast.alice_box, cast.alice, to=[paul.address], subject="Consultation", text="Bonjour.")
    write(peer, paul.address, "Suivi", "Bonjour.")
    delivered_to_patient(paul, 2)
    compose = client.get(reverse("patients:compose")).content.decode()
    assert "Dr Jeanne Externe" in compose
    response = client.post(reverse("patients:compose"), {"to": PRO, "subject": "Une question", "text": "Bonjour."})
    assert response.status_code == 302
    [mail] = received(peer)
    assert parseaddr(mail["From"])[1] == paul.address and mail["Subject"] == "Une question"
    # Once that pro closed the exchange, it is no longer offered, and a forged choice is refused.
    write(peer, paul.address, "[FIN]", "Fin.")
    delivered_to_patient(paul, 3)
    assert "Dr Jeanne Externe" not in client.get(reverse("patients:compose")).content.decode()
    refused = client.post(reverse("patients:compose"), {"to": PRO, "subject": "Encore", "text": "Bonjour."})
    assert "Choisissez à qui envoyer votre message dans la liste." in refused.content.decode()
    assert Outbox.objects.count() == 1


def test_one_message_to_an_open_and_a_closed_space_delivers_one_and_returns_the_other(cast, peer):
    """One SMTP transaction from the peer to two patients: the open space receives it (its own
    copy, naming it alone), the closed one is answered by our automatic return, and the peer's
    MTA adds no non-delivery report of its own."""
    paul, pauline = cast.paul_patient, cast.pauline_patient
    Patient.objects.filter(pk=pauline.pk).update(space_state=Patient.SpaceState.CLOSED)
    mail = EmailMessage()
    mail["From"] = f"Dr Jeanne Externe <{PRO}>"
    mail["To"] = f"{paul.address}, {pauline.address}"
    mail["Subject"] = "Convocation"
    mail["Message-ID"] = make_msgid(domain=PEER)
    mail.set_content("Bonjour, rendez-vous le 3.")
    with smtplib.SMTP("127.0.0.1", peer.port, timeout=10) as client:
        client.sendmail(PRO, [paul.address, pauline.address], mail.as_bytes())
    [entry] = delivered_to_patient(paul)
    with entry.message.raw.open("rb") as stored:
        assert pauline.address.encode() not in stored.read()
    [ret] = received(peer)
    assert_automatic_answer_to(ret, mail)
    assert pauline.address in text_of(ret) and paul.address not in text_of(ret)
    wait_until(lambda: relay_settled(peer), timeout=30)
    assert "status=bounced" not in maillog(peer) and len(mailbox(peer, PRO_LOCAL)) == 1
    assert not patient_entries(pauline).exists()


def test_the_patients_reply_with_a_file_and_the_medical_profile_arrives_intact(cast, peer, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.patients.conftest import PDF

    paul = cast.paul_patient
    write(peer, paul.address, "Documents", "Merci de m'envoyer votre ordonnance.")
    [entry] = delivered_to_patient(paul)
    client.force_login(cast.paul)
    upload = SimpleUploadedFile("ordonnance.pdf", PDF, content_type="application/pdf")
    response = client.post(
        reverse("patients:reply", args=[entry.pk]),
        {"text": "Voici mon ordonnance.", "files": [upload], "include_profile": "on"},
    )
    assert response.status_code == 302
    [reply] = received(peer)
    files = {part.get_filename(): part.get_content() for part in reply.iter_attachments()}
    assert files["ordonnance.pdf"] == PDF
    [profile] = [data for name, data in files.items() if name != "ordonnance.pdf"]
    assert profile.startswith(b"%PDF")
