"""The go-live self-test (issue 14 item 5): `manage.py selftest` and a page in the admin.

Each check answers ok / warn / fail / skipped with, in French, what it saw and what to fix. It
reads settings and talks to the real listeners, relay and delivery path: run it on the server
that will go live, with the production settings.
"""

from __future__ import annotations

import datetime
import smtplib
import socket
import ssl
import time
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.formats import date_format

from audit.models import AuditEvent
from mailboxes.models import Mailbox, TrustedDomain
from mailboxes.templatetags.mss_format import fr_precise

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
# RULES.md §5: TLS 1.2 with the four ECDHE-RSA AES-GCM/CBC suites of the MSSanté profile.
MSSANTE_SUITES = {
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA256",
}
PROBED_SUITES = sorted(
    MSSANTE_SUITES
    | {
        "ECDHE-RSA-AES256-SHA",
        "ECDHE-RSA-AES128-SHA",
        "AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-SHA256",
        "AES128-SHA",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    }
)
CERT_MIN_DAYS = 30


@dataclass
class Result:
    name: str
    label: str
    status: str
    found: str
    fix: str = ""


def run_all(*, actor=None, round_trip: bool = True) -> list[Result]:
    checks = [
        check_deploy,
        check_certificate,
        check_smtp_tls,
        check_whitelist,
        check_directory,
        check_relay,
        check_time,
        check_audit_chain,
    ]
    results = [_safe(check) for check in checks]
    if round_trip:
        results.insert(6, _safe(lambda: check_round_trip(actor)))
    return results


def _safe(check) -> Result:
    try:
        return check()
    except Exception as error:  # a self-test reports, it never stops at the first problem
        name = getattr(check, "__name__", "check").removeprefix("check_")
        return Result(name, name, FAIL, f"erreur inattendue : {type(error).__name__}: {error}", "voir les journaux")


# --- settings --------------------------------------------------------------------------------


def check_deploy() -> Result:
    from django.core import checks

    messages = [
        m
        for m in checks.run_checks(include_deployment_checks=True)
        if m.level >= checks.WARNING and not m.is_silenced()
    ]
    label = "Réglages de production (check --deploy)"
    if not messages:
        return Result("deploy", label, OK, "aucun avertissement de `manage.py check --deploy`")
    ids = ", ".join(sorted({m.id for m in messages}))
    return Result(
        "deploy",
        label,
        FAIL,
        f"{len(messages)} avertissement(s) : {ids}",
        "lancez `manage.py check --deploy` et corrigez chaque réglage signalé (DEBUG désactivé, SECRET_KEY longue "
        "et secrète, HTTPS, cookies sécurisés, ALLOWED_HOSTS) ; docs/configuration.md, section Production",
    )


# --- TLS -------------------------------------------------------------------------------------


def certificate_days_left(cert_path: str) -> tuple[datetime.datetime, int]:
    from cryptography import x509

    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    expires = cert.not_valid_after_utc
    return expires, (expires - timezone.now()).days


def check_certificate() -> Result:
    label = "Certificat TLS des serveurs SMTP"
    cert, key = settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY
    if not cert or not key:
        return Result(
            "certificate",
            label,
            FAIL,
            "SMTPD_TLS_CERT et SMTPD_TLS_KEY ne sont pas définis",
            "installez le certificat serveur (IGC Santé) et sa clé, puis définissez SMTPD_TLS_CERT et SMTPD_TLS_KEY",
        )
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        return Result(
            "certificate",
            label,
            FAIL,
            f"certificat ou clé illisible : {error}",
            "vérifiez les chemins, les droits de lecture du compte de service et que la clé correspond au certificat",
        )
    expires, days = certificate_days_left(cert)
    found = f"expire le {timezone.localtime(expires):%d/%m/%Y} (dans {days} jour(s))"
    if days < CERT_MIN_DAYS:
        return Result(
            "certificate",
            label,
            FAIL,
            found,
            f"renouvelez le certificat auprès de l'IGC Santé : il doit être valable encore {CERT_MIN_DAYS} jours au moins",
        )
    return Result("certificate", label, OK, found)


def _starttls(host: str, port: int, context: ssl.SSLContext) -> tuple[str, str] | None:
    """(protocol, cipher) negotiated after STARTTLS, or None when the handshake is refused."""
    with smtplib.SMTP(host, port, timeout=5) as client:
        client.ehlo("selftest.invalid")
        if not client.has_extn("starttls"):
            raise RuntimeError("STARTTLS n'est pas proposé")
        try:
            client.starttls(context=context)
        except (ssl.SSLError, smtplib.SMTPException, ConnectionError):
            return None
        return client.sock.version(), client.sock.cipher()[0]


def _probe_context(version: ssl.TLSVersion, cipher: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # probing the old versions is the point: they must be refused
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_3:
        context.set_ciphers(f"{cipher}:@SECLEVEL=0" if cipher else "ALL:@SECLEVEL=0")
    return context


def offered_tls(host: str, port: int) -> dict:
    """What the listener accepts: protocol versions, and the TLS 1.2 suites among PROBED_SUITES."""
    versions = {}
    for name, version in [
        ("TLSv1", ssl.TLSVersion.TLSv1),
        ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
        ("TLSv1.2", ssl.TLSVersion.TLSv1_2),
        ("TLSv1.3", ssl.TLSVersion.TLSv1_3),
    ]:
        try:
            versions[name] = _starttls(host, port, _probe_context(version)) is not None
        except ssl.SSLError:
            versions[name] = False
    suites = []
    if versions["TLSv1.2"]:
        for suite in PROBED_SUITES:
            try:
                if _starttls(host, port, _probe_context(ssl.TLSVersion.TLSv1_2, suite)):
                    suites.append(suite)
            except ssl.SSLError:
                continue
    return {"versions": versions, "suites": suites}


def check_smtp_tls() -> Result:
    label = "Protocoles et suites TLS du serveur SMTP (RULES.md §5)"
    host = "127.0.0.1" if settings.SMTPD_HOST in ("0.0.0.0", "", "::") else settings.SMTPD_HOST  # noqa: S104
    port = settings.SMTPD_PORT
    try:
        offered = offered_tls(host, port)
    except (OSError, RuntimeError, smtplib.SMTPException) as error:
        return Result(
            "smtp_tls",
            label,
            FAIL,
            f"{host}:{port} : {error}",
            "démarrez `manage.py runsmtpd` avec SMTPD_TLS_CERT et SMTPD_TLS_KEY, puis relancez l'auto-test",
        )
    versions = [v for v, accepted in offered["versions"].items() if accepted]
    suites = offered["suites"]
    found = f"versions acceptées : {', '.join(versions) or 'aucune'} ; suites TLS 1.2 : {', '.join(suites) or 'aucune'}"
    problems = []
    if offered["versions"]["TLSv1"] or offered["versions"]["TLSv1.1"]:
        problems.append("refusez TLS 1.0 et 1.1")
    if not offered["versions"]["TLSv1.2"]:
        problems.append("acceptez TLS 1.2")
    extra = sorted(set(suites) - MSSANTE_SUITES)
    if extra:
        problems.append(f"retirez de SMTPD_TLS_CIPHERS les suites hors profil MSSanté : {', '.join(extra)}")
    if not set(suites) & MSSANTE_SUITES and offered["versions"]["TLSv1.2"]:
        problems.append("proposez les suites ECDHE-RSA AES-GCM/CBC du profil MSSanté")
    if problems:
        return Result("smtp_tls", label, FAIL, found, " ; ".join(problems))
    if offered["versions"]["TLSv1.3"]:
        return Result(
            "smtp_tls",
            label,
            WARN,
            found,
            "TLS 1.3 est accepté en plus de TLS 1.2 : mettez SMTPD_TLS_MAX_VERSION=1.2 si votre autorité l'exige",
        )
    return Result("smtp_tls", label, OK, found)


# --- referentials ----------------------------------------------------------------------------


def last_whitelist_import():
    return (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.ADMIN_CHANGE, actor_label="import_whitelist", object_type="trusteddomain"
        )
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )


def check_whitelist() -> Result:
    label = "Fraîcheur de la liste blanche"
    count = TrustedDomain.objects.filter(source=TrustedDomain.Source.WHITELIST).count()
    last = last_whitelist_import()
    limit = settings.SELFTEST_WHITELIST_MAX_AGE_DAYS
    fix = (
        f"importez la liste blanche publiée (`manage.py import_whitelist FICHIER.xml`), au moins tous les {limit} jours"
    )
    if not count or last is None:
        return Result("whitelist", label, FAIL, "liste blanche jamais importée", fix)
    age = (timezone.now() - last).days
    found = f"{count} domaine(s), dernier import le {timezone.localtime(last):%d/%m/%Y} (il y a {age} jour(s))"
    return Result("whitelist", label, FAIL if age > limit else OK, found, fix if age > limit else "")


def check_directory() -> Result:
    from operations.views import directory_freshness

    label = "Fraîcheur de l'annuaire national"
    state = directory_freshness()
    fix = "importez l'annuaire national (manage.py import_annuaire, docs/directory.md)"
    if not state["last"]:
        return Result("directory", label, FAIL, "annuaire jamais importé", fix)
    found = f"dernier import le {timezone.localtime(state['last']):%d/%m/%Y}"
    if state["failed"]:
        tried = timezone.localtime(state["failed"].started_at)
        return Result(
            "directory",
            label,
            FAIL,
            f"{found} ; la tentative du {date_format(tried, 'SHORT_DATETIME_FORMAT')} a échoué",
            fix,
        )
    return Result("directory", label, OK, found)


# --- mail ------------------------------------------------------------------------------------


def check_relay() -> Result:
    label = "Relais vers les autres opérateurs"
    if not settings.RELAY_HOST:
        return Result(
            "relay",
            label,
            FAIL,
            "RELAY_HOST n'est pas défini",
            "définissez RELAY_HOST (et RELAY_PORT, RELAY_USE_TLS) : sans relais, rien ne part vers les autres opérateurs",
        )
    try:
        with smtplib.SMTP(settings.RELAY_HOST, settings.RELAY_PORT, timeout=10) as client:
            code, _banner = client.ehlo(settings.RELAY_HELO_NAME or socket.getfqdn())
            if settings.RELAY_USE_TLS:
                from mailboxes.relay import client_tls_context

                client.starttls(context=client_tls_context())
                code, _banner = client.ehlo(settings.RELAY_HELO_NAME or socket.getfqdn())
    except (OSError, smtplib.SMTPException, ssl.SSLError) as error:
        return Result(
            "relay",
            label,
            FAIL,
            f"{settings.RELAY_HOST}:{settings.RELAY_PORT} injoignable : {type(error).__name__}: {error}",
            "vérifiez l'adresse du relais, le pare-feu, et (avec RELAY_USE_TLS) le certificat du relais",
        )
    tls = " après STARTTLS" if settings.RELAY_USE_TLS else ""
    return Result("relay", label, OK, f"{settings.RELAY_HOST}:{settings.RELAY_PORT} répond {code}{tls}")


def check_round_trip(actor=None) -> Result:
    """A message to the patient domain's test address through the real delivery path; the
    automatic answer must come back in the sending box (RULES.md §3 test address)."""
    from mailboxes import compose
    from patients.policy import test_address

    label = "Aller-retour par l'adresse de test"
    address = settings.SELFTEST_MAILBOX
    fix = "définissez SELFTEST_MAILBOX : l'adresse d'une BAL organisationnelle ou applicative réservée aux essais"
    if not address:
        return Result("round_trip", label, FAIL, "SELFTEST_MAILBOX n'est pas défini", fix)
    box = Mailbox.objects.filter(address=address.lower(), is_active=True).first()
    if box is None:
        return Result("round_trip", label, FAIL, f"BAL {address} introuvable ou désactivée", fix)
    started = timezone.now()
    result = compose.send_from_mailbox(
        box, actor, to=[test_address()], subject="TEST auto-test", text="TEST de mise en service.", source="system"
    )
    deadline = time.monotonic() + settings.SELFTEST_ROUND_TRIP_SECONDS
    while True:
        answer = box.entries.filter(received_at__gte=started, message__in_reply_to=result.message.message_id).first()
        if answer is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if answer is None:
        return Result(
            "round_trip",
            label,
            FAIL,
            f"message n° {result.message.pk} envoyé, aucune réponse en {settings.SELFTEST_ROUND_TRIP_SECONDS} s",
            "vérifiez que les workers Celery tournent et que la politique patient est active (PATIENT_POLICY)",
        )
    seconds = (answer.received_at - started).total_seconds()
    return Result("round_trip", label, OK, f"réponse reçue dans {box.address} en {seconds:.1f} s")


# --- time and trail --------------------------------------------------------------------------


def check_time() -> Result:
    label = "Fuseau horaire et horloge"
    problems = []
    if not settings.USE_TZ:
        problems.append("activez USE_TZ")
    if settings.TIME_ZONE != "Europe/Paris":
        problems.append(
            f"TIME_ZONE vaut {settings.TIME_ZONE} : les journées des statistiques et des traces en dépendent"
        )
    before = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        database_now = cursor.fetchone()[0]
    after = timezone.now()
    if isinstance(database_now, str):  # SQLite answers text, in UTC
        database_now = datetime.datetime.fromisoformat(database_now).replace(tzinfo=datetime.UTC)
    if timezone.is_naive(database_now):
        database_now = timezone.make_aware(database_now, datetime.UTC)
    midpoint = before + (after - before) / 2
    skew = abs((database_now - midpoint).total_seconds())
    # SQLite's CURRENT_TIMESTAMP has a one-second resolution.
    tolerance = 2.0 if connection.vendor == "sqlite" else settings.SELFTEST_MAX_CLOCK_SKEW_SECONDS
    if skew > tolerance:
        problems.append(
            f"écart de {skew:.1f} s entre ce serveur et la base de données : synchronisez les horloges (NTP)"
        )
    found = f"{settings.TIME_ZONE}, écart avec la base {skew:.2f} s, heure locale {fr_precise(timezone.localtime())}"
    return Result("time", label, FAIL if problems else OK, found, " ; ".join(problems))


def check_audit_chain() -> Result:
    from audit.chain import verify

    label = "Intégrité de la chaîne des traces (7 derniers jours)"
    report = verify(timezone.localdate() - datetime.timedelta(days=7))
    found = f"{report.events} trace(s), {report.chains} chaîne(s)"
    if report.ok:
        return Result("audit_chain", label, OK, found)
    return Result(
        "audit_chain",
        label,
        FAIL,
        f"{found} ; premier maillon rompu : {report.first_break}",
        "conservez une copie de la base, lancez `manage.py audit_verify` et prévenez le délégué à la protection des données",
    )
