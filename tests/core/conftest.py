"""Helpers of the messaging-core tests: raw messages built the way peers send them."""

from email import policy
from email.message import EmailMessage

import pytest

# Another operator's domain (trusted, not hosted here): mail "from outside" comes from it.
PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


def raw_message(
    sender=PEER_SENDER,
    to=("alice.martin@ch-troispics.mssante.fr",),
    subject="Compte rendu",
    body="Bonjour,\nvoici le compte rendu.\n",
    message_id=f"<cr-1@{PEER}>",
    headers=None,
    attachments=(),
) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    message["Date"] = "Sun, 22 Nov 2026 08:00:00 +0100"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


@pytest.fixture(autouse=True)
def trusted_peer(request):
    """With the test cast, the peer operator's domain is in the trust space."""
    if "cast" in request.fixturenames:
        from mailboxes.models import TrustedDomain

        request.getfixturevalue("cast")
        TrustedDomain.objects.get_or_create(name=PEER)


@pytest.fixture
def raw():
    return raw_message


class RecordingPolicy:
    """A patient-domain policy that refuses what `refuse` lists and records every call, to test
    the delivery path's side of the interface (the real rules are tested in tests/patients)."""

    calls: list = []
    refuse: dict = {}

    def decide_recipient(self, envelope, recipient_address):
        from mailboxes.patient_domain import Decision

        self.calls.append(("decide_recipient", recipient_address, envelope.size))
        if recipient_address in self.refuse:
            return Decision(False, self.refuse[recipient_address], "Refusé par la politique.", True)
        return Decision.ok()

    def decide_patient_sender(self, envelope, recipient_address):
        from mailboxes.patient_domain import Decision

        self.calls.append(("decide_patient_sender", recipient_address, envelope.size))
        return Decision.ok()

    def after_delivery(self, message, delivered_to):
        self.calls.append(("after_delivery", message.pk, sorted(b.pk for b in delivered_to)))

    def refused(self, envelope, message, recipient_address, decision):
        self.calls.append(("refused", recipient_address, getattr(message, "pk", None), decision.code))


@pytest.fixture(autouse=True)
def neutral_policy(settings):
    """The delivery path's own behaviour, with the neutral policy unless a test installs another."""
    settings.PATIENT_POLICY = ""
    RecordingPolicy.calls = []
    RecordingPolicy.refuse = {}


@pytest.fixture
def recording_policy(settings):
    settings.PATIENT_POLICY = "tests.core.conftest.RecordingPolicy"
    return RecordingPolicy
