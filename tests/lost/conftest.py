"""Fixtures of the "nothing lost, nothing stuck" tests (issue 15 items 12–18)."""

import pytest

from tests.patients.conftest import _real_policy  # noqa: F401 - the real MSS-C policy
from tests.transport.conftest import sink  # noqa: F401 - an SMTP peer on loopback


@pytest.fixture
def mail_peer(sink, settings):  # noqa: F811
    """Notifications leave through Django's SMTP backend to the loopback peer."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 10
    settings.RELAY_RETRY_BASE_SECONDS = 60
    return sink
