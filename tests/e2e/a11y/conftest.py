"""axe-core accessibility checks (installed from npm, package.json): the pages of this folder
must have no serious or critical violation."""

from pathlib import Path

import pytest
from django.conf import settings

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # axe is injected as an inline script, which the product's strict CSP rightly refuses.
    return {**browser_context_args, "bypass_csp": True}


def serious_violations(page) -> list:
    """(rule, impact, first targets) of every serious or critical axe violation on the page."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
