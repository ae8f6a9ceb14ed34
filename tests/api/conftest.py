"""The API's cast: an applicative box of the CH des Trois Pics whose return box is
`cardiologie@`, real API keys (created as the admin creates them), and a client that calls the
API over the test client's HTTP stack with the key in `Authorization`."""

from types import SimpleNamespace

import pytest

from api.models import ApiKey
from mailboxes.compose import send_from_mailbox
from mailboxes.models import Mailbox, Message


@pytest.fixture(autouse=True)
def _real_policy(settings):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"


@pytest.fixture
def app_box(cast):
    box = Mailbox(
        kind=Mailbox.Kind.APPLICATIVE,
        address="dpi_noreply@ch-troispics.mssante.fr",
        domain=cast.d_troispics,
        return_mailbox=cast.cardio,
        display_name="CH des Trois Pics — DPI",
    )
    box.full_clean()
    box.save()
    return box


def make_key(box, **fields) -> tuple[ApiKey, str]:
    key = ApiKey(mailbox=box, name=fields.pop("name", "DPI"), **fields)
    key.full_clean()
    secret = key.issue()
    key.save()
    return key, secret


class Api:
    def __init__(self, client, secret):
        self.client = client
        self.secret = secret

    def headers(self, extra=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.secret}"} if self.secret else {}
        for name, value in (extra or {}).items():
            headers["HTTP_" + name.upper().replace("-", "_")] = value
        return headers

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, **self.headers(headers))

    def post(self, path, body=None, headers=None, **kwargs):
        if "data" in kwargs:  # multipart
            return self.client.post(path, kwargs["data"], **self.headers(headers))
        return self.client.post(path, body or {}, content_type="application/json", **self.headers(headers))


@pytest.fixture
def api(client, app_box):
    key, secret = make_key(app_box)
    return SimpleNamespace(key=key, secret=secret, call=Api(client, secret), box=app_box)


@pytest.fixture
def client_for(client):
    return lambda secret: Api(client, secret)


def patient_reply(cast, sent: dict, text: str = "Voici ma réponse.", attachments=()) -> Message:
    """Paul answers, from his space, the message the API sent him (`sent`, the API's answer):
    the reply goes to the applicative box's return box, `cardiologie@`."""
    return send_from_mailbox(
        cast.paul_box,
        cast.paul,
        to=[cast.cardio.address],
        subject="RE : Pré-admission",
        text=text,
        in_reply_to=Message.objects.get(pk=sent["id"]),
        attachments=list(attachments),
        source="patient",
    ).message
