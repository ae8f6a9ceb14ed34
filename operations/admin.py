"""Admin pages of the operations app: the audit trail (operations/audit_admin.py) and the
self-test page (operations/selftest_admin.py)."""

from operations import audit_admin, selftest_admin  # noqa: F401 - they register their admin classes
