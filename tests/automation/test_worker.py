"""A campaign through a real Celery worker on Redis (DB 11), killed with SIGKILL mid-way: the
killed chunk is rolled back, the sweeper re-queues the stalled campaign, a new worker finishes
it, and no patient gets two messages (issue 9 item 4)."""

import os
import signal

import pytest
import redis

from automation import campaigns
from automation.models import Campaign, CampaignLine, MessageModel
from mailboxes.models import Entry, Message
from tests.automation.conftest import in_days, patients
from tests.automation.test_campaigns import to_csv
from tests.celery_broker import broker_url, publishing_to
from tests.transport.conftest import process_env, start_worker, wait_until  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REDIS_URL = broker_url("automation", 11)
LINES = 240


@pytest.fixture
def broker_db11():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        with publishing_to(REDIS_URL):
            yield client
    finally:
        client.flushdb()
        client.close()


def sent_count(campaign) -> int:
    return CampaignLine.objects.filter(campaign=campaign, status=CampaignLine.Status.SENT).count()


def test_campaign_survives_a_killed_worker_and_sends_each_patient_once(
    service,
    broker_db11,
    start_worker,  # noqa: F811 - the fixture imported above
    settings,
    tmp_path,
):
    from automation.tasks import sweep_campaigns

    people = patients(LINES)
    date = in_days(30).strftime("%d/%m/%Y")
    data = to_csv([[p.ins, date, "10:00"] for p in people], headers=["INS", "Date", "Heure"])
    model = service.models[MessageModel.Kind.CONVOCATION]
    campaign = campaigns.create_campaign(model, filename="jour.csv", data=data, user=service.cast.bob)
    assert campaigns.validate(campaign).valid == LINES
    mails = tmp_path / "mails"
    mails.mkdir()
    worker_env = {
        "CELERY_BROKER_URL": REDIS_URL,
        "EMAIL_FILE_PATH": str(mails),
        "AUTOMATION_CAMPAIGN_CHUNK": "8",
        "AUTOMATION_CAMPAIGN_BATCH": "80",
        "AUTOMATION_CAMPAIGN_STALL_SECONDS": "2",
    }
    settings.AUTOMATION_CAMPAIGN_PARALLEL = 1
    settings.AUTOMATION_CAMPAIGN_STALL_SECONDS = 2
    first = start_worker(**worker_env)
    campaigns.start(campaign, service.cast.bob)
    try:
        # Inside the first batch (lines 1-80), several chunks of 8 committed: a kill now loses the
        # batch task with its unacknowledged message (visibility timeout: an hour).
        wait_until(lambda: sent_count(campaign) >= 24, timeout=60, interval=0.02)
    except AssertionError:
        raise AssertionError(first.output()[-3000:]) from None
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    at_kill = sent_count(campaign)
    assert 24 <= at_kill < 80, at_kill
    # Nothing half-done is committed: a line is sent (with its message) or still pending.
    states = set(CampaignLine.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert states <= {CampaignLine.Status.SENT, CampaignLine.Status.PENDING}
    assert Message.objects.filter(sender_mailbox=service.app).count() == at_kill

    second = start_worker(**worker_env)
    # Beat's periodic sweep: the campaign saw no progress for 2 s, its batches are re-queued.
    try:
        wait_until(
            lambda: sweep_campaigns.delay() and Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE,
            timeout=120,
            interval=1.0,
        )
    except AssertionError:
        raise AssertionError(second.output()[-3000:]) from None
    assert sent_count(campaign) == LINES
    assert Message.objects.filter(sender_mailbox=service.app).count() == LINES
    for person in people:
        assert Entry.objects.filter(mailbox=person.mailbox).count() == 1
    assert "campaign stalled, batches re-queued" in second.output()
