"""The quota indicator in Chromium, at 1366 px and on a 375 px phone: visible under the folder
list of the current box, inside the screen, overlapping neither the folders nor the box tools,
and in its warning state over 90 %."""

import os

import pytest
from django.urls import reverse

from mailboxes.models import Folder, Mailbox

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GB = 1024**3
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS")  # a folder, to look at the pages while working on them


def _overlap(a, b) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize(("width", "height", "used", "warning"), [(1366, 768, 1.2, False), (375, 812, 9.5, True)])
def test_the_quota_is_visible_and_overlaps_nothing(cast, login, live_server, width, height, used, warning):
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(used_bytes=int(used * GB), quota_bytes=10 * GB)
    page = login("alice")
    page.set_viewport_size({"width": width, "height": height})
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    page.goto(live_server.url + reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk]))
    quota = page.get_by_test_id("quota")
    quota.scroll_into_view_if_needed()
    assert quota.is_visible()
    percent = round(used * 10)
    text = f"{percent}\xa0% utilisé — {used:.1f}\xa0Go sur 10,0\xa0Go".replace(".", ",")
    assert text in quota.inner_text()
    meter = page.get_by_role("meter")
    assert meter.is_visible()
    assert meter.get_attribute("aria-valuetext") == text
    assert ("Boîte presque pleine" in quota.inner_text()) is warning
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/quota-{width}.png")
    area = quota.bounding_box()
    assert area["x"] >= 0 and area["x"] + area["width"] <= width
    assert meter.bounding_box()["width"] > 40  # a bar one can see, not a dot
    current = page.locator(".box.current")
    folders = current.locator(".folders").bounding_box()
    tools = current.locator(".box-tools").bounding_box()
    assert not _overlap(area, folders) and not _overlap(area, tools)
    assert folders["y"] + folders["height"] <= area["y"] <= tools["y"]
