"""Outbound relay to other MSSanté operators (DESIGN.md "Mail in and out").

`enqueue(outbox_id)` is what the delivery path calls after commit for each Outbox row.
"""


def enqueue(outbox_id: int) -> None:
    from mailboxes.tasks import relay_outbox

    relay_outbox.delay(outbox_id)
