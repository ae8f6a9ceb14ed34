"""Pro Santé Connect access tokens over SASL OAUTHBEARER and XOAUTH2 (issue 11 §3), checked
against a small OpenID issuer of our own on loopback that serves its JWKS."""

import base64
import http.server
import imaplib
import json
import smtplib
import ssl
import threading
import time

import jwt
import pytest
from allauth.socialaccount.models import SocialAccount
from cryptography.hazmat.primitives.asymmetric import rsa

from audit.models import AuditEvent
from tests.clients.conftest import build, free_port

pytestmark = pytest.mark.integration
RPPS_ID = "810000000000"


class Issuer:
    """A loopback OpenID issuer: its JWKS at /realms/psc/protocol/openid-connect/certs."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/realms/psc"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = json.dumps({"keys": [{**jwk, "kid": "psc-1", "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.endswith("/protocol/openid-connect/certs"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(jwks)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token(self, sub=RPPS_ID, aud="mss-lps", exp_in=300, key=None, kid="psc-1", iss=None):
        claims = {
            "iss": iss or self.url,
            "sub": sub,
            "aud": aud,
            "exp": int(time.time()) + exp_in,
            "iat": int(time.time()),
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid})

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def issuer(settings, cast):
    issuer = Issuer()
    settings.PSC_TOKEN_ISSUER = issuer.url
    settings.PSC_JWKS_URL = f"{issuer.url}/protocol/openid-connect/certs"
    settings.PSC_TOKEN_AUDIENCE = "mss-lps"
    SocialAccount.objects.create(user=cast.alice, provider="psc", uid=RPPS_ID)
    yield issuer
    issuer.close()


def oauthbearer(token, authzid=""):
    return f"n,a={authzid},\x01host=127.0.0.1\x01port=143\x01auth=Bearer {token}\x01\x01".encode()


def test_oauthbearer_and_xoauth2_over_imap(make_imap, issuer, cast):
    server = make_imap()
    client = server.client()
    assert "AUTH=OAUTHBEARER" in client.capabilities and "AUTH=XOAUTH2" in client.capabilities
    assert client.authenticate("OAUTHBEARER", lambda challenge: oauthbearer(issuer.token()))[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    login = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor=cast.alice).latest("id")
    assert login.detail == {"protocol": "imap", "method": "psc_token"}
    # The organisational box as authorisation identity: it becomes the personal namespace.
    client = server.client()
    token = issuer.token()
    assert (
        client.authenticate("OAUTHBEARER", lambda c: oauthbearer(token, "cardiologie@ch-troispics.mssante.fr"))[0]
        == "OK"
    )
    _typ, rows = client.list()
    assert b'(\\HasNoChildren) "/" INBOX' in rows
    assert any(b"alice.martin@ch-troispics.mssante.fr/INBOX" in r for r in rows)
    client = server.client()
    payload = f"user=alice.martin@ch-troispics.mssante.fr\x01auth=Bearer {issuer.token()}\x01\x01".encode()
    assert client.authenticate("XOAUTH2", lambda challenge: payload)[0] == "OK"


@pytest.mark.parametrize(
    ("token_args", "reason"),
    [
        ({"exp_in": -120}, "token_expired"),
        ({"aud": "another-client"}, "token_audience"),
        ({"iss": "http://127.0.0.1:9/realms/other"}, "token_issuer"),
        ({"kid": "unknown"}, "token_unknown_key"),
        ({"sub": "899999999999"}, "token_unlinked"),
    ],
)
def test_bad_tokens_are_refused(make_imap, issuer, cast, token_args, reason):
    server = make_imap()
    client = server.client()
    token = issuer.token(**token_args)
    challenges = []

    def answer(challenge):
        if challenge:
            challenges.append(challenge)
            return b"\x01"
        return oauthbearer(token)

    with pytest.raises(imaplib.IMAP4.error) as refused:
        client.authenticate("OAUTHBEARER", answer)
    assert "AUTHENTICATIONFAILED" in str(refused.value)
    assert json.loads(challenges[0])["status"] == "invalid_token"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, outcome=reason).exists()


def test_a_token_signed_by_another_key_is_refused(make_imap, issuer, cast):
    from clients import psc

    with pytest.raises(psc.InvalidToken) as refused:
        psc.user_for_token(issuer.token(key=issuer.other_key))
    assert refused.value.code == "invalid"
    assert psc.user_for_token(issuer.token()) == cast.alice


def test_xoauth2_over_submission(make_submission, issuer, cast, with_tls):
    server = make_submission()
    smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    smtp.starttls(context=ssl.create_default_context(cafile=with_tls[0]))
    smtp.ehlo("lps.cabinet")
    assert "XOAUTH2" in smtp.esmtp_features["auth"]
    payload = f"user=alice.martin@ch-troispics.mssante.fr\x01auth=Bearer {issuer.token()}\x01\x01"
    code, _text = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(payload.encode()).decode())
    assert code == 235
    raw = build(
        "alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], subject="Depuis le LPS"
    )
    assert (
        smtp.sendmail("alice.martin@ch-troispics.mssante.fr", ["charlie.durand@clinique-du-lac.mssante.fr"], raw) == {}
    )
    smtp.quit()
