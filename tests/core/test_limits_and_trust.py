"""Limits on the encoded size and quotas; the trust space; the white list import."""

import base64

import pytest
from django.core.management import CommandError, call_command

from mailboxes.delivery import DeliveryRefused, check_recipient, check_sender, send_message
from mailboxes.models import Delivery, Entry, Mailbox, Message, TrustedDomain
from tests.core.conftest import PEER_SENDER

MB25 = 25 * 1024 * 1024


def sized_message(size: int, to: str) -> bytes:
    """A message of exactly `size` encoded bytes: a big base64 attachment plus a padded text part."""
    head = (
        "From: Dr Alice MARTIN <alice.martin@ch-troispics.mssante.fr>\r\n"
        f"To: {to}\r\nSubject: Imagerie\r\nMessage-ID: <big-{size}@ch-troispics.mssante.fr>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    data = b"%PDF-1.4\n" + b"\x00" * (18 * 1024 * 1024)
    tail = (
        b'\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="irm.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--b--\r\n"
    )
    padding = size - len(head) - len(tail)
    assert padding > 0
    lines, rest = divmod(padding, 78)
    raw = head + (b"a" * 76 + b"\r\n") * lines + b"a" * rest + tail
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("delta", [-1, +1])
def test_patient_domain_takes_25_mb_minus_one_and_refuses_plus_one_on_the_encoded_size(cast, settings, delta):
    # Pros may exchange more than the patient domain's 25 MB here, so the patient rule is what bites:
    # the patient policy's (the delivery path only obeys it).
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.MAILBOX_MAX_MESSAGE_BYTES = 40 * 1024 * 1024
    Mailbox.objects.filter(pk__in=[cast.alice_box.pk, cast.charlie_box.pk]).update(max_message_bytes=0)
    cast.alice_box.refresh_from_db()
    raw = sized_message(MB25 + delta, cast.paul_box.address)
    result = send_message(
        raw,
        envelope_from=cast.alice_box.address,
        envelope_to=[cast.paul_box.address, cast.charlie_box.address],
        source="webmail",
        actor=cast.alice,
        sender_mailbox=cast.alice_box,
    )
    assert result.message.size == MB25 + delta
    patient = Delivery.objects.get(message=result.message, address=cast.paul_box.address)
    if delta < 0:
        assert patient.status == "delivered"
        assert result.message.attachments.get().size == 9 + 18 * 1024 * 1024
    else:
        assert (patient.status, patient.reason) == ("returned", "too_large")
        assert result.refused[cast.paul_box.address].automatic_return
    assert Delivery.objects.get(message=result.message, address=cast.charlie_box.address).status == "delivered"


def test_whole_message_over_the_size_limit_is_refused_before_anything_is_stored(cast):
    raw = sized_message(MB25 + 1, cast.charlie_box.address)
    with pytest.raises(DeliveryRefused) as refused:
        send_message(
            raw,
            envelope_from=cast.alice_box.address,
            envelope_to=[cast.charlie_box.address],
            source="webmail",
            sender_mailbox=cast.alice_box,
        )
    assert (refused.value.code, refused.value.smtp_code) == ("too_large", 552)
    assert Message.objects.count() == 0


def test_over_quota_box_refuses_and_others_still_receive(cast):
    from tests.core.conftest import raw_message

    raw = raw_message()
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=1000, used_bytes=1000 - len(raw) + 1)
    Mailbox.objects.filter(pk=cast.cardio.pk).update(quota_bytes=1000, used_bytes=1000 - len(raw))
    result = send_message(
        raw,
        envelope_from=PEER_SENDER,
        envelope_to=[cast.alice_box.address, cast.cardio.address],
        source="smtp",
    )
    assert result.refused[cast.alice_box.address].code == "over_quota"
    assert [b.pk for b in result.delivered] == [cast.cardio.pk]
    cast.cardio.refresh_from_db()
    assert cast.cardio.used_bytes == 1000  # exactly full is allowed
    with pytest.raises(DeliveryRefused) as refused:
        send_message(
            raw,
            envelope_from=PEER_SENDER,
            envelope_to=[cast.alice_box.address],
            source="smtp",
        )
    assert (refused.value.code, refused.value.smtp_code) == ("over_quota", 552)


def test_untrusted_sender_and_recipient_domains(cast):
    from tests.core.conftest import raw_message

    assert check_sender("spam@gmail.com").code == "untrusted_domain"
    assert check_sender("x@inconnu.mssante.fr").code == "untrusted_domain"
    assert check_sender(PEER_SENDER).deliver
    assert check_sender("").deliver  # reports use the null sender
    assert check_sender("Bob <a@b.fr>").code == "invalid_address"
    with pytest.raises(DeliveryRefused) as refused:
        send_message(
            raw_message(sender="spam@gmail.com"),
            envelope_from="spam@gmail.com",
            envelope_to=[cast.alice_box.address],
            source="smtp",
        )
    assert refused.value.code == "untrusted_domain"
    with pytest.raises(DeliveryRefused) as refused:
        send_message(
            raw_message(sender=cast.alice_box.address, to=("x@gmail.com",)),
            envelope_from=cast.alice_box.address,
            envelope_to=["x@gmail.com"],
            source="webmail",
            sender_mailbox=cast.alice_box,
        )
    assert refused.value.code == "untrusted_domain"


def test_check_recipient_decisions(cast, settings):
    peer = PEER_SENDER
    assert check_recipient(peer, "Alice.Martin@CH-TROISPICS.mssante.fr").deliver
    assert check_recipient(peer, "personne@ch-troispics.mssante.fr").code == "unknown_recipient"
    assert check_recipient(peer, "x@gmail.com").code == "untrusted_domain"
    assert check_recipient(peer, cast.paul_box.address).deliver
    # The INS rule is the patient policy's: the neutral policy knows no INS, only boxes.
    assert check_recipient(peer, "158037500100199@patient.mssante.fr").code == "unknown_recipient"
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    # Issue 15 item 6: a refusal the policy answers with an automatic return is accepted at RCPT
    # (the return is the answer, after DATA); with the null sender there is nobody to answer.
    assert check_recipient(peer, "158037500100199@patient.mssante.fr").deliver
    assert check_recipient("", "158037500100199@patient.mssante.fr").code == "wrong_ins"
    settings.PATIENT_POLICY = ""
    assert check_recipient(peer, "not an address").code == "invalid_address"
    TrustedDomain.objects.create(name="ch-ailleurs.mssante.fr")
    assert check_recipient(peer, "x@ch-ailleurs.mssante.fr").code == "not_hosted"
    assert check_recipient(cast.alice_box.address, "x@ch-ailleurs.mssante.fr", sender_mailbox=cast.alice_box).deliver
    settings.TRUST_ALL_MSSANTE = True
    assert check_sender("x@inconnu.mssante.fr").deliver


WHITELIST = """<?xml version="1.0" encoding="UTF-8"?>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
  <Operateur><Nom>Opérateur A</Nom>
    {domains}
  </Operateur>
</ListeBlanche>
"""


def whitelist_file(tmp_path, names, name="liste.xml"):
    domains = "\n".join(f"<Domaine><Nom>{n}</Nom></Domaine>" for n in names)
    path = tmp_path / name
    path.write_text(WHITELIST.format(domains=domains), encoding="utf-8")
    return str(path)


def test_whitelist_import_is_idempotent_and_removes_only_whitelisted_domains(db, tmp_path, capsys):
    TrustedDomain.objects.create(name="manuel.mssante.fr", source="manual")
    call_command(
        "import_whitelist", whitelist_file(tmp_path, ["ch-a.mssante.fr", "CH-B.mssante.fr", "manuel.mssante.fr"])
    )
    assert "2 ajouté(s), 1 conservé(s), 0 retiré(s)" in capsys.readouterr().out
    call_command(
        "import_whitelist", whitelist_file(tmp_path, ["ch-a.mssante.fr", "ch-b.mssante.fr", "manuel.mssante.fr"])
    )
    assert "0 ajouté(s), 3 conservé(s), 0 retiré(s)" in capsys.readouterr().out
    # Removing one of the two listed domains is more than WHITELIST_MAX_REMOVED_PERCENT (10 %):
    # refused, nothing changed, unless forced (issue 15 item 7).
    with pytest.raises(CommandError, match="--force"):
        call_command("import_whitelist", whitelist_file(tmp_path, ["ch-b.mssante.fr", "ch-c.mssante.fr"]))
    assert TrustedDomain.objects.filter(name="ch-a.mssante.fr").exists()
    assert not TrustedDomain.objects.filter(name="ch-c.mssante.fr").exists()
    call_command("import_whitelist", whitelist_file(tmp_path, ["ch-b.mssante.fr", "ch-c.mssante.fr"]), "--force")
    assert "1 ajouté(s), 1 conservé(s), 1 retiré(s)" in capsys.readouterr().out
    assert dict(TrustedDomain.objects.values_list("name", "source")) == {
        "ch-b.mssante.fr": "whitelist",
        "ch-c.mssante.fr": "whitelist",
        "manuel.mssante.fr": "manual",  # added by hand: never removed by an import
    }
    assert check_sender("x@ch-c.mssante.fr").deliver and check_sender("x@ch-a.mssante.fr").code == "untrusted_domain"


@pytest.mark.parametrize(
    "content",
    [
        "<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'><Domaine><Nom>ch-x.mssante.fr</Nom></Domaine>",
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY e "ch-x.mssante.fr">]>'
        "<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'><Domaine><Nom>&e;</Nom></Domaine></ListeBlanche>",
        "<ListeBlanche xmlns='https://autre/schema'><Domaine><Nom>ch-x.mssante.fr</Nom></Domaine></ListeBlanche>",
        "<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'><Domaine><Nom>ch-x.mssante.fr</Nom></Domaine>"
        "<Domaine><Nom>evil.com</Nom></Domaine></ListeBlanche>",
        "<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'></ListeBlanche>",
    ],
    ids=["truncated", "entity", "namespace", "bad-domain", "empty"],
)
def test_malformed_whitelist_changes_nothing(db, tmp_path, content):
    TrustedDomain.objects.create(name="ch-ancien.mssante.fr", source="whitelist")
    path = tmp_path / "bad.xml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match="rien n'a été modifié"):
        call_command("import_whitelist", str(path))
    assert list(TrustedDomain.objects.values_list("name", flat=True)) == ["ch-ancien.mssante.fr"]


def test_mail_from_outside_never_claims_a_local_sender(cast, recording_policy):
    """No forged local sender from outside: a hosted or patient address in MAIL FROM or in `From:`
    of mail coming in over SMTP is refused, and nothing is stored."""
    from tests.core.conftest import raw_message

    assert check_sender(cast.charlie_box.address).code == "sender_not_allowed"
    assert check_sender(cast.paul_box.address).code == "sender_not_allowed"
    forged = [
        (cast.charlie_box.address, raw_message(sender=cast.charlie_box.address)),  # envelope and header
        (PEER_SENDER, raw_message(sender=f"Dr Durand <{cast.charlie_box.address}>")),  # header only
        ("", raw_message(sender=cast.paul_box.address)),  # null sender, a patient in From:
    ]
    for envelope_from, raw in forged:
        with pytest.raises(DeliveryRefused) as refused:
            send_message(raw, envelope_from=envelope_from, envelope_to=[cast.alice_box.address], source="smtp")
        assert refused.value.code == "sender_not_allowed" and refused.value.smtp_code == 550
    assert Message.objects.count() == 0
    # The patient policy never saw the forged patient message.
    assert recording_policy.calls == []


def test_a_local_box_sends_under_its_own_from_address(cast):
    from tests.core.conftest import raw_message

    raw = raw_message(sender=cast.alice_box.address, to=(cast.charlie_box.address,))
    with pytest.raises(DeliveryRefused) as refused:
        send_message(
            raw,
            envelope_from=cast.charlie_box.address,
            envelope_to=[cast.alice_box.address],
            source="api",
            sender_mailbox=cast.charlie_box,
        )
    assert refused.value.code == "sender_not_allowed"
    own = raw_message(sender=f"Dr Charlie Durand <{cast.charlie_box.address.upper()}>")
    result = send_message(
        own,
        envelope_from=cast.charlie_box.address,
        envelope_to=[cast.alice_box.address],
        source="api",
        sender_mailbox=cast.charlie_box,
    )
    assert result.delivered == [cast.alice_box]


@pytest.mark.django_db(transaction=True)
def test_domain_names_are_cached_per_process_and_forgotten_on_change(settings):
    """Outside a transaction the trust space is read from the process cache (no query per
    message); saving or deleting a domain, or importing the white list, is seen at once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailboxes.management.commands.import_whitelist import apply_whitelist
    from mailboxes.models import Domain, Structure
    from mailboxes.trust import classify_domains, invalidate_domain_cache

    settings.TRUST_CACHE_SECONDS = 3600
    invalidate_domain_cache()
    structure = Structure.objects.create(name="CH", finess="750000013")
    classify_domains({"ch-x.mssante.fr"})
    with CaptureQueriesContext(connection) as queries:
        assert classify_domains({"ch-x.mssante.fr", "ch-y.mssante.fr"}) == {
            "ch-x.mssante.fr": "untrusted",
            "ch-y.mssante.fr": "untrusted",
        }
    assert len(queries) == 0
    Domain.objects.create(name="ch-x.mssante.fr", structure=structure)
    TrustedDomain.objects.create(name="ch-y.mssante.fr")
    assert classify_domains({"ch-x.mssante.fr", "ch-y.mssante.fr"}) == {
        "ch-x.mssante.fr": "hosted",
        "ch-y.mssante.fr": "trusted",
    }
    apply_whitelist(["ch-z.mssante.fr"])  # bulk insert: no post_save, invalidated explicitly
    assert classify_domains({"ch-z.mssante.fr"}) == {"ch-z.mssante.fr": "trusted"}
    TrustedDomain.objects.filter(name="ch-y.mssante.fr").delete()
    assert check_sender("x@ch-y.mssante.fr").code == "untrusted_domain"
    assert check_sender("x@ch-x.mssante.fr").code == "sender_not_allowed"
    invalidate_domain_cache()


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_cache_is_read_never_filled_and_a_domain_saved_there_is_seen(settings):
    """A campaign's chunk (one transaction) reads the names cached before it; a stale cache is
    not filled inside a transaction; a domain saved in the transaction drops the cache, so the
    transaction sees its own row, and nothing of a rolled-back transaction stays cached."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from mailboxes.models import Domain, Structure
    from mailboxes.trust import cached_domain_sets, classify_domains, invalidate_domain_cache

    settings.TRUST_CACHE_SECONDS = 3600
    structure = Structure.objects.create(name="CH", finess="750000013")
    invalidate_domain_cache()
    with transaction.atomic():
        assert cached_domain_sets() is None  # stale and inside a transaction: not filled
    cached_domain_sets()  # filled outside
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert classify_domains({"ch-x.mssante.fr"}) == {"ch-x.mssante.fr": "untrusted"}
    assert len(queries) == 0
    try:
        with transaction.atomic():
            Domain.objects.create(name="ch-x.mssante.fr", structure=structure)
            assert classify_domains({"ch-x.mssante.fr"}) == {"ch-x.mssante.fr": "hosted"}
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert classify_domains({"ch-x.mssante.fr"}) == {"ch-x.mssante.fr": "untrusted"}
    invalidate_domain_cache()


def test_a_box_filled_by_a_concurrent_delivery_is_not_pushed_over_its_quota(cast, monkeypatch):
    """The quota is checked again in the transaction that counts the space: a box that another
    delivery filled after this one's plan refuses the message instead of going over quota."""
    from mailboxes.delivery import writing
    from tests.core.conftest import raw_message

    raw = raw_message(to=(cast.alice_box.address, cast.cardio.address))
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=len(raw) * 3, used_bytes=0)
    real_write_raw = writing.write_raw

    def concurrent_delivery_then_store(data, prefix=b""):
        # Between the plan (room for it) and the transaction, another delivery fills alice's box.
        Mailbox.objects.filter(pk=cast.alice_box.pk).update(used_bytes=len(raw) * 3 - 10)
        return real_write_raw(data, prefix)

    # The step between the plan and the transaction: storing the bytes.
    monkeypatch.setattr(writing, "write_raw", concurrent_delivery_then_store)
    result = send_message(
        raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address, cast.cardio.address], source="smtp"
    )
    assert result.delivered == [cast.cardio]
    assert result.refused[cast.alice_box.address].code == "over_quota"
    assert Delivery.objects.get(message=result.message, address=cast.alice_box.address).status == "bounced"
    assert Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes == len(raw) * 3 - 10
    assert Mailbox.objects.get(pk=cast.cardio.pk).used_bytes == len(raw)

    # The only recipient filled meanwhile: refused as a whole, nothing written, nothing counted.
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(used_bytes=0)
    with pytest.raises(DeliveryRefused) as refused:
        send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    assert refused.value.code == "over_quota"
    assert Message.objects.count() == 1 and Entry.objects.filter(mailbox=cast.alice_box).count() == 0
    assert Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes == len(raw) * 3 - 10


def test_deleting_entries_gives_the_space_back_and_never_below_zero(cast):
    from mailboxes.delivery import release_space
    from tests.core.conftest import raw_message

    raw = raw_message()
    message = send_message(
        raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address, cast.cardio.address], source="smtp"
    ).message
    Mailbox.objects.filter(pk=cast.cardio.pk).update(used_bytes=10)  # drifted below the real use
    entries = list(Entry.objects.filter(message=message))
    assert release_space(entries) == {cast.alice_box.pk: len(raw), cast.cardio.pk: len(raw)}
    assert Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes == 0
    assert Mailbox.objects.get(pk=cast.cardio.pk).used_bytes == 0
