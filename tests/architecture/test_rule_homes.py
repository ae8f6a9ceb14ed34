"""One home per rule (issue 13): every MSS-C refusal text and limit lives in patients/policy.py.

These tests read the source of the product, as a reviewer would: a refusal sentence or the
patient limit written anywhere else is a second home for a rule of RULES.md §3.
"""

from pathlib import Path

from patients import policy

ROOT = Path(__file__).resolve().parents[2]
APPS = ["accounts", "audit", "mailboxes", "patients", "health_record", "directory", "webmail"]
APPS += ["automation", "api", "clients", "operations", "mssante", "templates"]
POLICY = ROOT / "patients" / "policy.py"


def product_files():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*")):
            if path.suffix in (".py", ".html", ".txt") and "migrations" not in path.parts and path != POLICY:
                yield path


def texts_of_the_policy() -> list[str]:
    texts = [policy.TOO_LARGE_TO_SEND.split("%(limit)s")[1].strip(), policy.NO_RETURN_TO_AUTOMATIC]
    for refusal in policy.REFUSALS.values():
        texts += [t for t in (refusal.text, refusal.happened, refusal.to_do) if t]
    return texts


def test_every_refusal_text_of_the_patient_domain_is_written_in_the_policy_only():
    texts = texts_of_the_policy()
    assert len(texts) >= 20  # the table was read: 9 codes, 5 of them with a return message
    found = []
    for path in product_files():
        source = path.read_text(encoding="utf-8")
        found += [(path.relative_to(ROOT), text) for text in texts if text in source]
    assert found == []


def test_the_patient_limit_is_read_by_the_policy_only():
    readers = [
        path.relative_to(ROOT)
        for path in product_files()
        if "PATIENT_MAX_MESSAGE_BYTES" in path.read_text(encoding="utf-8")
    ]
    # settings.py declares it; the policy is its one reader (`policy.message_limit`).
    assert readers == [Path("mssante/settings.py")]
    assert "settings.PATIENT_MAX_MESSAGE_BYTES" in POLICY.read_text(encoding="utf-8")


def test_one_text_per_refusal_code():
    for code, refusal in policy.REFUSALS.items():
        assert policy.refusal(code).reason == refusal.text == policy.refusal_text(code)
        assert policy.refusal(code).automatic_return == refusal.automatic_return


def test_every_reason_of_an_automatic_return_has_its_short_label():
    """The statistics count automatic returns by reason: each such code is named in a few words
    by the policy (`Refusal.label`), never shown as its code."""
    for code, refusal in policy.REFUSALS.items():
        if refusal.automatic_return:
            assert refusal.label and policy.refusal_label(code) == refusal.label
            assert len(refusal.label) <= 30 and refusal.label != code
