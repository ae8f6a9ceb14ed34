"""The SASL mechanisms of IMAP AUTHENTICATE and SMTP AUTH (RFC 4422): their messages decoded.

PLAIN (RFC 4616), LOGIN (the de-facto two-step exchange), OAUTHBEARER (RFC 7628) and XOAUTH2
(Google's format, used by Thunderbird and Outlook). Each decoder takes the client's decoded
bytes and returns what the authentication needs; a malformed message raises `SaslError`.
pysasl (PyPI) has no OAUTHBEARER and the four formats are a few lines each, so they live here.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass


class SaslError(Exception):
    pass


@dataclass
class Credentials:
    authzid: str  # the identity to act as (a box address), or ""
    login: str
    secret: str  # a password, or a bearer token
    bearer: bool = False


def b64decode(data: bytes | str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("invalid base64") from None


def utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("not UTF-8") from None


def login(user: bytes, secret: bytes) -> Credentials:
    """The LOGIN mechanism's two answers (IMAP and submission alike)."""
    return Credentials("", utf8(user), utf8(secret))


def plain(message: bytes) -> Credentials:
    parts = message.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        raise SaslError("PLAIN is authzid NUL authcid NUL password")
    return Credentials(utf8(parts[0]), utf8(parts[1]), utf8(parts[2]))


def oauthbearer(message: bytes) -> Credentials:
    """`n,a=user@example,^Ahost=...^Aauth=Bearer TOKEN^A^A` (RFC 7628 §3.1)."""
    text = utf8(message)
    gs2, sep, rest = text.partition("\x01")
    if not sep or not gs2.startswith(("n,", "y,")):
        raise SaslError("bad GS2 header")
    authzid = ""
    for field in gs2.split(",")[1:]:
        if field.startswith("a="):
            authzid = field[2:].replace("=2C", ",").replace("=3D", "=")
    token = _bearer(rest.split("\x01"))
    return Credentials(authzid, authzid, token, bearer=True)


def xoauth2(message: bytes) -> Credentials:
    """`user=USER^Aauth=Bearer TOKEN^A^A`."""
    fields = utf8(message).split("\x01")
    user = next((f[5:] for f in fields if f.startswith("user=")), "")
    return Credentials("", user, _bearer(fields), bearer=True)


def _bearer(fields: list[str]) -> str:
    for field in fields:
        if field.lower().startswith("auth="):
            scheme, _, token = field[5:].partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise SaslError("no bearer token")


def oauth_error(scope: str = "openid") -> bytes:
    """The JSON error a server sends before failing an OAUTHBEARER / XOAUTH2 exchange."""
    return json.dumps({"status": "invalid_token", "schemes": "bearer", "scope": scope}).encode("ascii")
