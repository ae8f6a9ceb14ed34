"""Browser tests: Playwright driving Debian's Chromium (never a downloaded browser).

`live_server` serves the app; Playwright's sync API runs an event loop in the test thread, so
Django's async-safety check is relaxed for these tests only.
"""

import os
import shutil

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": LAUNCH_ARGS, "headless": True}


@pytest.fixture
def page(page):
    page.set_default_timeout(5000)
    page.set_default_navigation_timeout(10000)
    return page


@pytest.fixture
def login(page, live_server, password):
    """Sign in through the real login form; returns the page on the landing URL."""

    def _login(username: str):
        page.goto(f"{live_server.url}/comptes/login/")
        page.fill("input[name=login]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return _login
