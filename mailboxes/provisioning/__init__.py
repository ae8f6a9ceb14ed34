"""Provisioning: loading structures, domains, people, mailboxes — and, through the sections other
apps register, patients — from a file, all or nothing (docs/provisioning.md).

- `engine`: the run (`provision`, `provision_file`, `load_file`), the `Section` registry, the
  helpers sections use (`Provisioner`);
- `operator`: this app's sections (structures … memberships);
- `invitations`: the e-mail inviting a provisioned account to choose its password.

The patient domain's sections live in `patients/provisioning.py`.
"""

from mailboxes.provisioning import operator  # noqa: F401 - registers the operator's sections
from mailboxes.provisioning.engine import (
    ItemFailed,
    Provisioner,
    ProvisioningError,
    Report,
    Section,
    date,
    load_file,
    provision,
    provision_file,
    register_section,
    sections,
    snapshot,
    text,
)

__all__ = [
    "ItemFailed",
    "Provisioner",
    "ProvisioningError",
    "Report",
    "Section",
    "date",
    "load_file",
    "provision",
    "provision_file",
    "register_section",
    "sections",
    "snapshot",
    "text",
]
