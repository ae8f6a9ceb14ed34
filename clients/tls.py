"""The TLS settings of the client listeners (IMAP, submission): RULES.md §5, TLS 1.2 at least
with the four ECDHE-RSA suites of the MSSanté profile (SMTPD_TLS_CIPHERS), the certificate of
CLIENTS_TLS_CERT / CLIENTS_TLS_KEY (by default the SMTP gateway's)."""

from __future__ import annotations

import ssl

from django.conf import settings

from mailboxes.smtp_gateway import load_certificate


def server_context() -> ssl.SSLContext | None:
    if not (settings.CLIENTS_TLS_CERT and settings.CLIENTS_TLS_KEY):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.SMTPD_TLS_MAX_VERSION == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(settings.SMTPD_TLS_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    load_certificate(context, "CLIENTS_TLS_CERT", "CLIENTS_TLS_KEY")
    return context
