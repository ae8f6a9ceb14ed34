"""Nobody reaches another's mailbox: the access-checked fetches, proven on the test cast."""

import pytest
from django.http import Http404

from mailboxes.access import mailbox_for_user, mailboxes_for_user


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
