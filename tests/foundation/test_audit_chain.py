"""The tamper-evident audit trail: append-only rows, hash chains per day and partition, daily
seals, `manage.py audit_verify` naming the first broken link, retention by whole sealed days."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import GENESIS, seal_closed_days, verify
from audit.events import audit_rows, record, record_many
from audit.models import AppendOnlyError, AuditChain, AuditEvent, AuditSeal
from audit.retention import purge_expired_events
from mailboxes.compose import send_from_mailbox


def table():
    return connection.ops.quote_name(AuditEvent._meta.db_table)


def raw_sql(statement, params):
    with connection.cursor() as cursor:
        cursor.execute(statement.format(table=table()), params)


def verify_output(*args) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("audit_verify", *args, stdout=out)
    except CommandError as error:
        return error.returncode, out.getvalue() + str(error)
    return 0, out.getvalue()


def five_events():
    return [record(AuditEvent.Action.READ, actor_label="test", object_type="entry", object_id=n) for n in range(5)]


def test_events_are_chained_in_order_and_verify(db):
    events = five_events()
    chain = AuditChain.objects.get()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert chain.seq == 5 and AuditChain.objects.get().head_hash == events[-1].hash
    assert chain.day == timezone.localdate()
    code, out = verify_output()
    assert code == 0 and "Chaîne intègre : 5 trace(s) dans 1 chaîne(s)" in out


def test_a_raw_sql_update_is_found_at_the_event_it_changed(db):
    events = five_events()
    raw_sql("UPDATE {table} SET outcome = %s WHERE id = %s", ["refused", events[2].pk])
    code, out = verify_output()
    assert code == 1
    assert f"Premier maillon rompu : trace #{events[2].pk}" in out and "rang 3" in out
    assert "trace modifiée" in out


def test_rewriting_an_event_with_its_own_hash_breaks_the_next_link(db):
    from audit.chain import event_hash

    events = five_events()
    target = AuditEvent.objects.filter(pk=events[1].pk).values().get()
    target["outcome"] = "forged"
    chain = AuditChain.objects.get()
    forged = event_hash(target["prev_hash"], target, chain.day, chain.partition)
    raw_sql("UPDATE {table} SET outcome = %s, hash = %s WHERE id = %s", ["forged", forged, events[1].pk])
    report = verify()
    assert report.first_break.event_id == events[2].pk
    assert "trace précédente modifiée" in report.first_break.reason


def test_a_deleted_event_and_a_deleted_tail_are_named(db):
    events = five_events()
    raw_sql("DELETE FROM {table} WHERE id = %s", [events[1].pk])
    report = verify()
    assert report.first_break.event_id == events[2].pk and "1 trace(s) supprimée(s)" in report.first_break.reason

    raw_sql("DELETE FROM {table} WHERE id >= %s", [events[1].pk])
    report = verify()
    assert report.first_break.seq == 2 and "fin de chaîne supprimée" in report.first_break.reason


def test_the_orm_refuses_to_update_or_delete_audit_rows(db):
    event = record(AuditEvent.Action.READ, actor_label="test")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        event.delete()
    event.outcome = "x"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"


def test_deleting_an_account_leaves_its_events_untouched(cast):
    event = record(AuditEvent.Action.READ, actor=cast.bob, object_id=1)
    cast.bob.memberships.all().delete()
    cast.bob.delete()
    assert AuditEvent.objects.get(pk=event.pk).actor_id == event.actor_id
    assert verify().ok


def test_the_delivery_path_writes_chained_rows(cast):
    send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Avis", text="Bonjour")
    rows = AuditEvent.objects.filter(action__in=["message.submitted", "message.delivered"])
    assert rows.count() == 2 and not rows.filter(hash="").exists()
    assert verify().ok


@pytest.mark.django_db(transaction=True)
def test_audit_rows_must_be_linked_inside_the_writing_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_rows([{"action": "message.read"}])
    with transaction.atomic():
        rows = audit_rows([{"action": "message.read", "actor_label": "t"}, {"action": "message.read"}])
        AuditEvent.objects.bulk_create(rows)  # already linked: not linked twice
    assert [r.seq for r in rows] == [1, 2]
    assert AuditChain.objects.get().seq == 2 and verify().ok


def test_closed_days_are_sealed_and_a_recomputed_day_no_longer_matches_its_seal(db):
    from audit.chain import event_hash

    now = timezone.now()
    old = [record(AuditEvent.Action.READ, object_id=n, at=now - timedelta(days=3)) for n in range(3)]
    record(AuditEvent.Action.READ, object_id=9)
    sealed = seal_closed_days(now)
    # Three closed days (the one with events and the two empty ones after it), none for today.
    assert [s.day for s in sealed] == [timezone.localdate(now - timedelta(days=d)) for d in (3, 2, 1)]
    assert sealed[0].events == 3 and sealed[1].prev_hash == sealed[0].hash and sealed[1].events == 0
    assert seal_closed_days(now) == []  # idempotent
    assert verify().ok

    # Someone rewrites an event of a sealed day AND recomputes the whole chain and its head.
    chain = AuditChain.objects.get(day=sealed[0].day)
    prev = GENESIS
    for event in AuditEvent.objects.filter(chain=chain).order_by("seq").values():
        if event["id"] == old[1].pk:
            event["outcome"] = "forged"
        digest = event_hash(prev, event, chain.day, chain.partition)
        raw_sql(
            "UPDATE {table} SET outcome = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [event["outcome"], prev, digest, event["id"]],
        )
        prev = digest
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {connection.ops.quote_name('audit_auditchain')} SET head_hash = %s", [prev])
    report = verify()
    assert not report.ok and "ne correspondent plus au scellement" in report.first_break.reason
    assert report.first_break.day == sealed[0].day


def test_retention_deletes_whole_sealed_days_keeps_seals_and_records_the_purge(db, settings):
    settings.AUDIT_RETENTION_DAYS = 10
    now = timezone.now()
    for days in (12, 11, 3):
        record_many(
            [{"action": "message.read", "object_id": str(n), "at": now - timedelta(days=days)} for n in range(4)]
        )
    kept = record(AuditEvent.Action.READ, object_id="today")

    assert purge_expired_events(now) == 8
    seals = {s.day: s for s in AuditSeal.objects.all()}
    old_days = [timezone.localdate(now - timedelta(days=d)) for d in (12, 11)]
    assert all(seals[d].purged_at is not None for d in old_days)
    assert not AuditChain.objects.filter(day__in=old_days).exists()
    purge = AuditEvent.objects.get(action="audit.purged")
    assert purge.detail["events"] == 8 and purge.detail["days"] == 2
    assert purge.detail["last_seal"] == seals[old_days[-1]].hash
    assert AuditEvent.objects.filter(pk=kept.pk).exists()
    assert AuditEvent.objects.filter(at__lt=now - timedelta(days=10)).count() == 0
    assert verify().ok
    assert purge_expired_events(now) == 0  # nothing left to purge, nothing recorded twice
    assert AuditEvent.objects.filter(action="audit.purged").count() == 1


def test_sealing_and_purge_are_scheduled():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"audit.tasks.purge_audit_events", "audit.tasks.seal_audit_days"} <= tasks


def hold_a_head(object_id, linked, release, errors):
    """In a thread: write an event and keep its transaction (and chain head) open until `release`."""
    try:
        with transaction.atomic():
            record(AuditEvent.Action.READ, object_id=object_id)
            linked.set()
            release.wait(10)
    except Exception as error:  # pragma: no cover - reported by the test
        errors.append(error)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_take_different_chains_and_never_wait(db_vendor):
    """Two transactions writing at once: the second takes another chain head instead of waiting
    for the first to commit (PostgreSQL SKIP LOCKED). SQLite has one writer at a time, so there
    the second simply writes after the first and both land in one chain."""
    first_linked, release, errors = threading.Event(), threading.Event(), []

    def first_writer():
        hold_a_head("first", first_linked, release, errors)

    if db_vendor == "postgresql":
        thread = threading.Thread(target=first_writer)
        thread.start()
        assert first_linked.wait(10)
        second = record(AuditEvent.Action.READ, object_id="second")  # would block without SKIP LOCKED
        release.set()
        thread.join(10)
        first = AuditEvent.objects.get(object_id="first")
        assert first.chain_id != second.chain_id and {first.seq, second.seq} == {1}
        assert AuditChain.objects.count() == 2
    else:
        release.set()
        first_writer()
        record(AuditEvent.Action.READ, object_id="second")
        assert list(AuditEvent.objects.order_by("seq").values_list("object_id", "seq")) == [("first", 1), ("second", 2)]
    assert not errors and verify().ok


@pytest.mark.django_db(transaction=True)
def test_a_writer_whose_own_head_is_held_by_another_opens_a_new_chain(db_vendor):
    """A connection opens its chain of the day (numbered after it) and commits; another writer
    then takes that free head and holds it. When the first connection writes again while every
    head is busy, it opens another chain instead of giving up: the gateway answered `451` to a
    few messages of a busy minute until this was fixed. (SQLite: one writer at a time, so the
    writes simply follow each other in one chain.)"""
    record(AuditEvent.Action.READ, object_id="opens its chain")
    if db_vendor != "postgresql":
        record(AuditEvent.Action.READ, object_id="writes again")
        assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2]
        assert AuditChain.objects.count() == 1 and verify().ok
        return
    other_holds, release, errors = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=hold_a_head, args=("holds the free head", other_holds, release, errors))
    thread.start()
    assert other_holds.wait(10)
    try:
        again = record(AuditEvent.Action.READ, object_id="writes again")
    finally:
        release.set()
        thread.join(10)
    held = AuditEvent.objects.get(object_id="holds the free head")
    assert again.chain_id != held.chain_id and again.seq == 1
    assert AuditChain.objects.count() == 2
    assert not errors and verify().ok
