"""The admin after times of day became "9 h 05" (mssante/formats/fr/formats.py): its date and
time widgets still write and read the input formats ("04/03/2027", "09:05:00"), so a change form
saved as it is shown leaves a date and time unchanged; lists show the French form."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from automation.models import Convocation
from tests.automation.conftest import convocation_of_paul, in_days

pytestmark = pytest.mark.django_db


class _FormValues(HTMLParser):
    """What a browser would post back from the change form, untouched."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self.select_name = self.textarea_name = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "checkbox", "file"):
            self.data[name] = a.get("value") or ""
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data[name] = a.get("value") or "on"
        elif tag == "select" and name:
            self.select_name = name
        elif tag == "option" and self.select_name and "selected" in a:
            self.data[self.select_name] = a.get("value") or ""
        elif tag == "textarea" and name:
            self.textarea_name = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select_name = None
        elif tag == "textarea":
            self.textarea_name = None

    def handle_data(self, data):
        if self.textarea_name:
            self.data[self.textarea_name] += data.removeprefix("\n")


def test_the_admin_change_form_of_a_convocation_saves_its_date_and_time_unchanged(service, client):
    cast = service.cast
    starts_at = in_days(20, 9, 5)
    convocation = convocation_of_paul(service, starts_at)
    client.force_login(cast.ada)
    url = reverse("admin:automation_convocation_change", args=[convocation.pk])
    parser = _FormValues()
    parser.feed(client.get(url).content.decode())
    assert parser.data["starts_at_0"] == starts_at.strftime("%d/%m/%Y")
    assert parser.data["starts_at_1"] == "09:05:00"
    response = client.post(url, {**parser.data, "_save": "Enregistrer"})
    assert response.status_code == 302, response.content.decode()[:2000]
    convocation.refresh_from_db()
    assert convocation.starts_at == starts_at
    listing = client.get(reverse("admin:automation_convocation_changelist")).content.decode()
    assert "à 9 h 05" in listing and "09:05" not in listing
    # What the admin's widget shows is read back as typed elsewhere: "9:05" and "09:05" too.
    for typed in ("09:05", "9:05"):
        client.post(url, {**parser.data, "starts_at_1": typed, "_save": "Enregistrer"})
        assert Convocation.objects.get(pk=convocation.pk).starts_at == starts_at
