"""Issue 16 item 1: the body-mass index reads "25,8 kg/m²" (one decimal, French) on the
profile page, the measures page and in the profile PDF, never a binary expansion."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from health_record.models import format_number
from health_record.profile import bmi, latest_measures
from tests.record.test_pdf import pdf_text

pytestmark = pytest.mark.django_db

LONG_NUMBER = re.compile(r"\d+,\d{2,}\s*kg/m²")


def add_measures(client, *rows):
    for kind, day, value in rows:
        response = client.post(reverse("health_record:measures"), {"kind": kind, "measured_on": day, "value": value})
        assert response.status_code == 302, response.content.decode()[:400]


def test_bmi_has_one_decimal_everywhere(cast, paul_client):
    # 79.9 kg / (1.76 m)² = 25.794…: the float result was 25.8000000000000007105427357601…
    add_measures(paul_client, ("weight", "2025-03-10", "79,9"), ("height", "2025-03-10", "176"))

    profile_page = paul_client.get(reverse("health_record:profile")).content.decode()
    measures_page = paul_client.get(reverse("health_record:measures")).content.decode()
    for page in (profile_page, measures_page):
        assert "<strong>25,8 kg/m²</strong>" in page
        assert not LONG_NUMBER.search(page)

    response = paul_client.get(reverse("health_record:profile_pdf"))
    text = pdf_text(response.content)
    assert "IMC 25,8 kg/m²" in text
    assert not LONG_NUMBER.search(text)


def test_bmi_keeps_its_one_decimal_and_rounds_half_up(cast, paul_client):
    # 81 kg / (1.80 m)² = 25.0 exactly: still one decimal.
    add_measures(paul_client, ("weight", "2025-03-10", "81"), ("height", "2025-03-10", "180"))
    assert bmi(latest_measures(cast.paul_patient)) == "25,0"


def test_format_number_reads_floats_by_their_short_form():
    assert format_number(25.8) == "25,8"
    assert format_number(Decimal("72.50")) == "72,5"
    assert format_number(Decimal("120.00")) == "120"
