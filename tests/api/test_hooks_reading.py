"""The API's hooks act on delivery steps and read receipts only (api/hooks.py): a message opened
in the webmail or the patient's space is audited as read, but notifies nobody, so opening costs
the hooks no query, even when the sending box has a key with a webhook (issue 13)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.hooks import concerns_hooks, on_events_committed
from api.models import ApiKey, WebhookDelivery
from audit.models import AuditEvent
from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry
from tests.api.conftest import make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(cast, api):
    """A message of the DPI's box (its key has a webhook) delivered to Paul's space."""
    ApiKey.objects.filter(pk=api.key.pk).update(webhook_url="http://127.0.0.1:9/hook")
    message = send_from_mailbox(api.box, None, to=[cast.paul_box.address], subject="Convocation", text="t").message
    return Entry.objects.get(mailbox=cast.paul_box, message=message)


def read_row(entry, actor_label=""):
    return AuditEvent(
        action=AuditEvent.Action.READ,
        actor_label=actor_label,
        object_type="entry",
        object_id=str(entry.pk),
        mailbox_id=entry.mailbox_id,
        message_id=entry.message_id,
    )


def test_an_opening_is_not_the_hooks_concern_a_read_receipt_is(sent):
    assert not concerns_hooks(read_row(sent))
    assert concerns_hooks(read_row(sent, actor_label="mdn"))
    assert concerns_hooks(AuditEvent(action=AuditEvent.Action.DELIVERED, message_id=sent.message_id))


def test_openings_cost_the_hooks_no_query(sent, django_assert_num_queries):
    with django_assert_num_queries(0):
        on_events_committed(AuditEvent, rows=[read_row(sent), read_row(sent)])
    assert not WebhookDelivery.objects.filter(event=WebhookDelivery.Event.READ).exists()


def test_a_read_receipt_still_reaches_the_webhook(sent):
    on_events_committed(AuditEvent, rows=[read_row(sent, actor_label="mdn")])
    queued = WebhookDelivery.objects.get(event=WebhookDelivery.Event.READ)
    assert queued.payload["data"]["message"] == sent.message_id


def test_the_patients_thread_page_runs_no_hook_query(cast, sent, client, django_capture_on_commit_callbacks):
    """The page's read events are committed and sent to the hooks like any others; none of
    their statements reads the sending boxes or the keys."""
    client.force_login(cast.paul)
    url = f"/patient/echange/{sent.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(url).status_code == 200  # the first visit marks read
    with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert client.get(url).status_code == 200
    assert callbacks, "the visit's read events were sent to the hooks"
    statements = [q["sql"] for q in captured.captured_queries]
    assert not [s for s in statements if ApiKey._meta.db_table in s], statements
    assert AuditEvent.objects.filter(action=AuditEvent.Action.READ, message_id=sent.message_id).count() == 2


def test_a_key_without_webhook_is_not_looked_up_either(cast, app_box, django_assert_num_queries):
    make_key(app_box, name="sans webhook")
    message = send_from_mailbox(app_box, None, to=[cast.paul_box.address], subject="s", text="t").message
    entry = Entry.objects.get(mailbox=cast.paul_box, message=message)
    with django_assert_num_queries(0):
        on_events_committed(AuditEvent, rows=[read_row(entry)])
