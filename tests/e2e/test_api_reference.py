"""The API's reference page in Chromium: Swagger UI from our static files renders every
operation of the OpenAPI document under the product's Content-Security-Policy."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_the_operations(page, live_server):
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: violations.append(str(e)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{live_server.url}/api/v1/docs")
    page.get_by_text("Envoyer un message depuis la boîte de la clé").wait_for()
    assert page.get_by_text("/api/v1/boxes/{box}/replies/{reply_id}/filed").count() >= 1
    assert all(url.startswith(live_server.url) for url in requests)
    # Scripts are all ours and allowed (the operations rendered); no script was refused.
    assert not [v for v in violations if "script" in v.lower()]
