"""Pro Santé Connect access tokens for mail clients and practice software (issue 11 §3; RULES.md
§6: the "API LPS" authenticates nominative and organisational boxes with a PSC token).

A token is a JWT signed by the issuer: its key comes from the issuer's JWKS (PSC_JWKS_URL, kept
PSC_JWKS_CACHE_SECONDS), then the signature, `iss`, `aud`, `exp` (and `nbf`, `iat` when present)
are checked with PyJWT. The identity claim (PSC_TOKEN_USER_CLAIM, `sub` by default) names the
account through the Pro Santé Connect link allauth keeps (SocialAccount of provider
OIDC_PROVIDER_ID): only an account already linked to that identity is reached.
"""

from __future__ import annotations

import threading

import jwt
from allauth.socialaccount.models import SocialAccount
from django.conf import settings

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
_clients: dict[str, jwt.PyJWKClient] = {}
_lock = threading.Lock()


class InvalidToken(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def enabled() -> bool:
    return bool(settings.PSC_JWKS_URL and settings.PSC_TOKEN_ISSUER)


def _jwks_client() -> jwt.PyJWKClient:
    url = settings.PSC_JWKS_URL
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = jwt.PyJWKClient(
                url, cache_keys=True, lifespan=settings.PSC_JWKS_CACHE_SECONDS, timeout=settings.PSC_JWKS_TIMEOUT
            )
        return client


def validate(token: str) -> dict:
    """The token's claims, or InvalidToken with a short code (never the token in a log)."""
    if not enabled():
        raise InvalidToken("disabled")
    if not token or token.count(".") != 2 or len(token) > 16384:
        raise InvalidToken("malformed")
    try:
        key = _jwks_client().get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError:
        raise InvalidToken("jwks_unreachable") from None
    except (jwt.PyJWKClientError, jwt.DecodeError):
        raise InvalidToken("unknown_key") from None
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=settings.PSC_TOKEN_AUDIENCE or None,
            issuer=settings.PSC_TOKEN_ISSUER,
            leeway=settings.PSC_TOKEN_LEEWAY,
            options={"require": ["exp", "iss"], "verify_aud": bool(settings.PSC_TOKEN_AUDIENCE)},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("issuer") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid") from None


def user_for_token(token: str):
    claims = validate(token)
    identity = claims.get(settings.PSC_TOKEN_USER_CLAIM)
    if not identity or not isinstance(identity, str):
        raise InvalidToken("no_identity")
    link = SocialAccount.objects.filter(provider=settings.OIDC_PROVIDER_ID, uid=identity).select_related("user").first()
    if link is None:
        raise InvalidToken("unlinked")
    return link.user
