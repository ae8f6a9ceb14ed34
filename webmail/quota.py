"""How full a box is, for the indicator under the folder list (`templates/webmail/_quota.html`).

It reads the box already loaded with the navigation (`Mailbox.used_bytes`, kept exact by the
delivery and the deletions; `quota_bytes`): no query of its own. The one home of these numbers:
the IMAP server's QUOTA extension (RFC 9208, clients/imap/backend.py `quota_root`) reads the same
`QuotaUsage` and only turns it into its units (`storage_kib`), so that a desktop client and the
webmail show the same box as full as each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from mailboxes.models import Mailbox

# From this share of the quota the indicator warns, as webmails commonly do.
QUOTA_WARNING_PERCENT = 90


@dataclass(frozen=True)
class QuotaUsage:
    used: int
    quota: int
    percent: int  # rounded to the nearest: 1.2 GB of 10 GB reads 12 %, as the sizes beside it
    warning: bool

    @property
    def text(self) -> str:
        """« 12 % utilisé — 1,2 Go sur 10 Go » (formatted when shown: the IMAP server reads the
        numbers alone)."""
        return _("%(percent)s\u00a0%% utilisé — %(used)s sur %(quota)s") % {
            "percent": self.percent,
            "used": filesizeformat(self.used),
            "quota": filesizeformat(self.quota),
        }

    @property
    def warning_level(self) -> int:
        """The `<meter>`'s `high`: the smallest byte count whose percentage reads 90 (89.5 %),
        so that the bar turns when the text does."""
        return -(-self.quota * (2 * QUOTA_WARNING_PERCENT - 1) // 200)

    @property
    def shown_used(self) -> int:
        """The `<meter>`'s value, within its range even for a box over its quota."""
        return min(self.used, self.quota)

    def storage_kib(self) -> tuple[int, int]:
        """(usage, limit) of the IMAP QUOTA resource STORAGE (RFC 9208 §5.1), in units of 1024
        octets: the usage rounded up and the limit down, so that a client never sees more room
        than delivery will give (a box holding 1 octet is not shown empty)."""
        return -(-self.used // 1024), self.quota // 1024


def quota_usage(mailbox: Mailbox) -> QuotaUsage | None:
    quota = mailbox.quota_bytes
    if not quota or quota <= 0:
        return None
    used = max(mailbox.used_bytes, 0)
    percent = (used * 200 + quota) // (2 * quota)  # round half up, in integers
    return QuotaUsage(used=used, quota=quota, percent=percent, warning=percent >= QUOTA_WARNING_PERCENT)
