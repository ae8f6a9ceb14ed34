"""Nobody reaches another's mailbox: the access-checked fetches, proven on the test cast."""

import pytest
from django.db import connection
from django.http import Http404

from mailboxes.access import PRO_BOX_IDS_SQL, mailbox_for_user, mailboxes_for_user
from mailboxes.models import Mailbox


def addresses(user):
    return set(mailboxes_for_user(user).values_list("address", flat=True))


def test_each_member_of_the_cast_reaches_exactly_their_boxes(cast):
    assert addresses(cast.alice) == {"alice.martin@ch-troispics.mssante.fr", "cardiologie@ch-troispics.mssante.fr"}
    assert addresses(cast.bob) == {"cardiologie@ch-troispics.mssante.fr"}
    assert addresses(cast.charlie) == {"charlie.durand@clinique-du-lac.mssante.fr"}
    assert addresses(cast.paul) == {cast.paul_patient.address}
    assert addresses(cast.pauline) == {cast.pauline_patient.address}
    # The administrator works in the admin, not in anyone's mailbox.
    assert addresses(cast.ada) == set()


@pytest.mark.parametrize(
    "who, box",
    [
        ("charlie", "alice_box"),
        ("charlie", "cardio"),
        ("bob", "alice_box"),
        ("alice", "charlie_box"),
        ("paul", "pauline_box"),
        ("pauline", "paul_box"),
        ("paul", "cardio"),
        ("alice", "paul_box"),
        ("ada", "alice_box"),
    ],
)
def test_not_yours_looks_like_does_not_exist(cast, who, box):
    with pytest.raises(Http404):
        mailbox_for_user(getattr(cast, who), getattr(cast, box).pk)
    with pytest.raises(Http404):
        mailbox_for_user(getattr(cast, who), 987654321)


def test_a_deactivated_box_is_out_of_reach(cast):
    cast.cardio.is_active = False
    cast.cardio.save()
    with pytest.raises(Http404):
        mailbox_for_user(cast.bob, cast.cardio.pk)


def test_the_access_rule_written_as_sql_gives_what_the_orm_gives(cast):
    """`PRO_BOX_IDS_SQL` (the webmail's navigation on PostgreSQL) is `mailboxes_for_user`
    without patient boxes, for owners, members, patients, the admin and a deactivated box."""

    def by_sql(user):
        with connection.cursor() as cursor:
            cursor.execute(PRO_BOX_IDS_SQL, [user.pk, user.pk])
            return {pk for (pk,) in cursor.fetchall()}

    def by_orm(user):
        return set(mailboxes_for_user(user).exclude(kind=Mailbox.Kind.PATIENT).values_list("pk", flat=True))

    people = [cast.alice, cast.bob, cast.charlie, cast.paul, cast.pauline, cast.ada]
    assert by_sql(cast.alice) == {cast.alice_box.pk, cast.cardio.pk}
    assert by_sql(cast.paul) == set() and by_sql(cast.ada) == set()
    for user in people:
        assert by_sql(user) == by_orm(user), user.username
    cast.cardio.is_active = False
    cast.cardio.save()
    assert by_sql(cast.alice) == {cast.alice_box.pk}
    for user in people:
        assert by_sql(user) == by_orm(user), user.username
