"""Contacts (issue 16 item 19): personal and shared address books filled from the mail exchanged,
editable, and proposed by the recipient completion beside the directory."""

import html

import pytest
from django.urls import reverse

from mailboxes import compose
from mailboxes.models import TrustedDomain
from webmail import contacts
from webmail.models import AddressBook, Contact

pytestmark = pytest.mark.django_db


def send(sender_box, actor, to, **kwargs):
    return compose.send_from_mailbox(
        sender_box, actor, to=to, subject=kwargs.pop("subject", "Avis"), text="x", **kwargs
    )


def book_addresses(book):
    return set(Contact.objects.filter(book=book, hidden=False).values_list("address", flat=True))


def test_books_fill_from_senders_and_recipients_but_not_from_automatic_mail(cast):
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address])  # received by Alice
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Relance")
    send(cast.alice_box, cast.alice, [cast.paul_patient.address])  # sent by Alice to a patient
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], extra_headers={"Auto-Submitted": "auto-generated"})
    send(cast.charlie_box, cast.charlie, [cast.cardio.address])  # for the shared box
    personal, shared = contacts.refresh_for_user(cast.alice)
    assert shared.mailbox_id == cast.cardio.pk
    charlie = Contact.objects.get(book=personal, address=cast.charlie_box.address)
    assert charlie.name == "Dr Charlie DURAND" and charlie.exchanges == 2  # the automatic one does not count
    paul = Contact.objects.get(book=personal, address=cast.paul_patient.address)
    assert paul.name == cast.paul_patient.display_name  # the name known to the space, not a bare INS
    assert book_addresses(shared) == {cast.charlie_box.address}
    assert cast.alice_box.address not in book_addresses(personal)
    # Filling again reads only what is new.
    assert contacts.fill_book(personal.pk) == 0
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Encore")
    assert contacts.fill_book(personal.pk) == 1
    assert Contact.objects.get(pk=charlie.pk).exchanges == 3


def test_completion_proposes_contacts_before_the_directory(cast, client):
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address])
    client.force_login(cast.alice)
    client.get(reverse("webmail:compose"))  # opening the editor brings the book up to date
    book = AddressBook.objects.get(owner=cast.alice)
    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    contacts.save_contact(book, address="helene.dupre@autre-operateur.mssante.fr", name="Dr Hélène DUPRÉ")
    results = client.post(reverse("webmail:recipients"), {"q": "x@y.fr, durand"}).json()["results"]
    assert results[0] == {
        "address": cast.charlie_box.address,
        "name": "Dr Charlie DURAND",
        "kind": "",
        "contact": "personal",
        "contact_label": "contact",
    }
    # The directory also knows Charlie's box: it is not offered twice.
    assert [r["address"] for r in results].count(cast.charlie_box.address) == 1
    # Accents and case ignored, several words all required.
    assert (
        contacts.search_contacts(cast.alice, "helene dupre")[0]["address"] == "helene.dupre@autre-operateur.mssante.fr"
    )
    assert contacts.search_contacts(cast.alice, "HÉLÈNE autre")[0]["name"] == "Dr Hélène DUPRÉ"
    assert contacts.search_contacts(cast.alice, "helene martin") == []


def test_books_are_isolated_and_shared_books_belong_to_the_box_members(cast, client):
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Pour Alice")
    send(cast.charlie_box, cast.charlie, [cast.cardio.address], subject="Pour le service")
    personal, shared = contacts.refresh_for_user(cast.alice)
    private = Contact.objects.get(book=personal)
    # Bob, member of cardiologie@, finds Charlie through the shared book only.
    found = contacts.search_contacts(cast.bob, "durand")
    assert found == [{"address": cast.charlie_box.address, "name": "Dr Charlie DURAND", "book": "shared"}]
    client.force_login(cast.bob)
    assert client.get(reverse("webmail:contact_edit", args=[private.pk])).status_code == 404
    assert client.post(reverse("webmail:contact_remove", args=[private.pk])).status_code == 404
    assert client.get(reverse("webmail:contacts"), {"carnet": personal.pk}).status_code == 404
    page = client.get(reverse("webmail:contacts"), {"carnet": shared.pk})
    assert cast.charlie_box.address in page.content.decode()
    client.force_login(cast.charlie)
    assert contacts.search_contacts(cast.charlie, "durand") == []


def test_contacts_are_edited_added_and_removed_for_good(cast, client):
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address])
    client.force_login(cast.alice)
    client.get(reverse("webmail:contacts"))
    contact = Contact.objects.get(address=cast.charlie_box.address)
    client.post(
        reverse("webmail:contact_edit", args=[contact.pk]), {"name": "Charlie Durand", "note": "Médecin traitant"}
    )
    contact.refresh_from_db()
    assert (contact.name, contact.note) == ("Charlie Durand", "Médecin traitant")
    assert contacts.search_contacts(cast.alice, "traitant") == []  # the note is not searched, the name is
    assert contacts.search_contacts(cast.alice, "charlie")[0]["name"] == "Charlie Durand"
    # Removed, it does not come back with the next message.
    client.post(reverse("webmail:contact_remove", args=[contact.pk]))
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Encore")
    client.get(reverse("webmail:contacts"))
    assert contacts.search_contacts(cast.alice, "durand") == []
    # Added by hand: outside the trust space or twice, a clear error and nothing saved.
    url = reverse("webmail:contacts")
    response = client.post(url, {"address": "dr.durand@gmail.com", "name": "Dr Durand"})
    assert response.status_code == 400
    assert "n'appartient pas à l'espace de confiance MSSanté" in html.unescape(response.content.decode())
    assert client.post(url, {"address": cast.charlie_box.address, "name": "Dr C. Durand"}).status_code == 302
    response = client.post(url, {"address": cast.charlie_box.address})
    assert "Ce carnet contient déjà" in html.unescape(response.content.decode())
    assert contacts.search_contacts(cast.alice, "durand")[0]["name"] == "Dr C. Durand"
