"""Errors as RFC 9457 problem details (issue 10 §1): a stable `type` per refusal code, a French
`title` and its English `title_en`, the French `detail`, and the HTTP status of the code.

`CATALOGUE` is the one list of codes the API answers; docs/api.md prints it, and the tests walk
it. Refusal codes of the delivery path and of the patient policy keep their own names: the
`detail` then is the delivery path's French sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import OperationalError
from django.http import Http404, JsonResponse
from django.utils.http import parse_header_parameters
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, parsers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import exception_handler

from api.serializers import too_many_attachments

TYPE_BASE = "urn:mssante:api:problem:"
CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class Kind:
    status: int
    title: str
    title_en: str


CATALOGUE: dict[str, Kind] = {
    "bad_request": Kind(400, "Requête mal formée", "Malformed request"),
    "not_authenticated": Kind(401, "Authentification requise", "Authentication required"),
    "invalid_key": Kind(401, "Clé d'API invalide", "Invalid API key"),
    "key_revoked": Kind(401, "Clé d'API révoquée", "API key revoked"),
    "key_expired": Kind(401, "Clé d'API expirée", "API key expired"),
    "ip_not_allowed": Kind(403, "Adresse IP non autorisée pour cette clé", "IP address not allowed for this key"),
    "certificate_required": Kind(
        403, "Certificat client absent ou différent", "Client certificate missing or different"
    ),
    "scope_missing": Kind(403, "Portée de la clé insuffisante", "The key lacks the required scope"),
    "mailbox_inactive": Kind(403, "Boîte aux lettres désactivée", "Mailbox deactivated"),
    "not_found": Kind(404, "Introuvable", "Not found"),
    "method_not_allowed": Kind(405, "Méthode non autorisée", "Method not allowed"),
    "not_acceptable": Kind(406, "Format de réponse non disponible", "Not acceptable"),
    "idempotency_conflict": Kind(
        409, "Clé d'idempotence déjà utilisée pour une autre requête", "Idempotency key reused with another body"
    ),
    "idempotency_in_progress": Kind(
        409, "Requête de même clé d'idempotence en cours", "A request with this idempotency key is in progress"
    ),
    "length_required": Kind(411, "Longueur de la requête requise", "Length required"),
    "request_too_large": Kind(413, "Requête trop volumineuse", "Request too large"),
    "unsupported_media_type": Kind(415, "Type de contenu non pris en charge", "Unsupported media type"),
    "validation_error": Kind(422, "Requête invalide", "Validation error"),
    "in_reply_to_unknown": Kind(
        422, "Message d'origine introuvable dans cette boîte", "In-Reply-To names no message of this box"
    ),
    "model_fields_missing": Kind(422, "Champs du modèle sans valeur", "Message model fields without value"),
    "rate_limited": Kind(429, "Trop de requêtes", "Too many requests"),
    "daily_limit_reached": Kind(
        429, "Limite quotidienne d'envoi de la boîte atteinte", "The mailbox's daily sending limit is reached"
    ),
    "server_error": Kind(500, "Erreur interne du serveur", "Internal server error"),
    "temporarily_refused": Kind(503, "Refus temporaire : réessayez plus tard", "Temporarily refused: try again later"),
    # Refusal codes of the delivery path (mailboxes/delivery/decisions.py) and the patient
    # policy (patients/policy.py): the whole message refused, nothing sent.
    "invalid_address": Kind(422, "Adresse invalide", "Invalid address"),
    "unknown_recipient": Kind(422, "Destinataire inconnu", "Unknown recipient"),
    "untrusted_domain": Kind(422, "Domaine hors de l'espace de confiance", "Domain outside the trust space"),
    "not_hosted": Kind(422, "Domaine non hébergé", "Domain not hosted here"),
    "sender_not_allowed": Kind(422, "Expéditeur non autorisé", "Sender not allowed"),
    "too_large": Kind(413, "Message trop volumineux", "Message too large"),
    "over_quota": Kind(422, "Boîte du destinataire pleine", "Recipient mailbox full"),
    "malformed": Kind(422, "Message illisible", "Malformed message"),
    "wrong_ins": Kind(422, "Matricule INS erroné", "Wrong INS"),
    "patient_not_found": Kind(422, "Aucune messagerie patient à cette adresse", "No patient messaging at this address"),
    "space_closed": Kind(422, "Espace patient clôturé", "Patient space closed"),
    "ins_not_qualified": Kind(422, "INS non qualifiée", "INS not qualified"),
    "blocked": Kind(422, "Message non distribué", "Message not delivered"),
    "patient_to_patient": Kind(422, "Un patient n'écrit pas à un patient", "A patient cannot write to a patient"),
    "patient_may_not_initiate": Kind(422, "Le patient ne peut pas initier", "The patient may not initiate"),
    "conversation_closed": Kind(422, "Échange clôturé", "Conversation closed"),
    "refused": Kind(422, "Message refusé", "Message refused"),
}


class Problem(exceptions.APIException):
    """An API error of the catalogue; `extra` members are added to the problem object."""

    def __init__(self, code: str, detail: str = "", *, extra: dict | None = None, headers: dict | None = None):
        kind = CATALOGUE.get(code) or CATALOGUE["refused"]
        self.code = code
        self.status_code = kind.status
        self.extra = extra or {}
        self.headers = headers or {}
        if not detail and "errors" in self.extra:
            detail = validation_detail(self.extra["errors"])
        super().__init__(detail or kind.title, code)


def error_lines(errors, path: str = "") -> list[tuple[str, str]]:
    """(field, message) of a validation `errors` member, nested serializers' fields dotted
    (`attachments.0.filename`), in order."""
    if isinstance(errors, dict):
        return [
            line
            for name, value in errors.items()
            for line in error_lines(value, f"{path}.{name}" if path else str(name))
        ]
    if isinstance(errors, list | tuple):
        if all(not isinstance(item, dict | list | tuple) for item in errors):
            return [(path, str(item)) for item in errors]
        return [
            line
            for index, item in enumerate(errors)
            for line in error_lines(item, f"{path}.{index}" if path else str(index))
        ]
    return [(path, str(errors))]


def validation_detail(errors) -> str:
    """The `detail` of a validation problem: what is wrong, not only the title — the first
    field's message, and the other fields named (the messages are all in `errors`)."""
    lines = error_lines(errors)
    if not lines:
        return CATALOGUE["validation_error"].title
    field, message = lines[0]
    name = "corps de la requête" if field in ("", "non_field_errors") else field
    detail = f"{name} : {message}"
    others = list(dict.fromkeys(f for f, _ in lines[1:] if f != field))
    if others:
        detail += f" Autres champs signalés dans « errors » : {', '.join(others)}."
    return detail


def problem_body(code: str, detail: str = "", *, status_code: int | None = None, extra=None) -> dict:
    """The problem details of `code` (RFC 9457 members, the French and English titles, our code)."""
    kind = CATALOGUE.get(code) or CATALOGUE["refused"]
    body = {
        "type": TYPE_BASE + code,
        "title": kind.title,
        "title_en": kind.title_en,
        "status": status_code or kind.status,
        "detail": str(detail or kind.title),
        "code": code,
    }
    body.update(extra or {})
    return body


def problem_response(code: str, detail: str = "", *, status_code: int | None = None, extra=None, headers=None):
    body = problem_body(code, detail, status_code=status_code, extra=extra)
    return Response(body, status=body["status"], headers=headers, content_type=CONTENT_TYPE)


DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_key",
    exceptions.PermissionDenied: "scope_missing",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "validation_error",
    exceptions.ValidationError: "validation_error",
}


def handle_exception(exc, context):
    """REST_FRAMEWORK["EXCEPTION_HANDLER"] for the API's views: every error is a problem."""
    if isinstance(exc, Problem):
        return problem_response(exc.code, exc.detail, extra=exc.extra, headers=exc.headers)
    if isinstance(exc, OperationalError) and "deadlock" in str(exc):
        # Two deliveries locked the same boxes in opposite orders: this one was rolled back
        # whole, so a retry is safe (and replays nothing under an Idempotency-Key).
        return problem_response(
            "temporarily_refused", "Conflit momentané avec un autre envoi : réessayez.", headers={"Retry-After": "1"}
        )
    if isinstance(exc, TooManyFilesSent):  # Django stopped reading a form past API_MAX_ATTACHMENTS files
        errors = {"files": [too_many_attachments()]}
        return problem_response("validation_error", validation_detail(errors), extra={"errors": errors})
    if isinstance(exc, SuspiciousOperation):  # met while reading the body (request.data)
        return problem_response(*suspicious_problem(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "validation_error")
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.PermissionDenied) and exc.get_codes() in CATALOGUE:
        code = exc.get_codes()
    extra, detail = {}, ""
    if isinstance(exc, exceptions.ValidationError):
        extra["errors"] = exc.detail
        detail = validation_detail(exc.detail)
    elif isinstance(exc, exceptions.NotFound):
        detail = "Aucun objet de ce nom n'est accessible avec cette clé."
    elif isinstance(exc, exceptions.NotAcceptable):
        # DRF's own sentence is vague (and its French translation faulty): say what to accept.
        detail = (
            "Cette API répond en JSON : acceptez « application/json » "
            f"(et « {CONTENT_TYPE} » pour les erreurs) dans l'en-tête Accept."
        )
    else:
        detail = str(exc.detail) if not isinstance(exc.detail, list | dict) else ""
    headers = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(int(exc.wait + 0.999), 1))
        detail = f"Limite d'appels atteinte : réessayez dans {headers['Retry-After']} s."
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY if code == "validation_error" else response.status_code
    if status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return problem_response(code, detail, status_code=status_code, extra=extra, headers=headers)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with its refusals in French (DRF gives Python's English sentence:
    « Expecting property name enclosed in double quotes… »), a body nested too deep for
    Python's parser (a RecursionError, else a 500) refused like any unreadable body, and a
    body that is `null` refused here (DRF's serializer said « No data provided », untranslated)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("Corps JSON illisible : imbrication trop profonde.") from None
        except exceptions.ParseError as exc:
            raise exceptions.ParseError(f"Corps JSON illisible : {json_reason(exc.__context__)}") from None
        if data is None:
            raise exceptions.ParseError("Corps JSON illisible : null au lieu d'un objet { … }.")
        return data


def json_reason(error) -> str:
    """Why Python's JSON reader refused a body, in French."""
    if isinstance(error, json.JSONDecodeError):
        return f"erreur de syntaxe ligne {error.lineno}, colonne {error.colno}."
    if isinstance(error, UnicodeDecodeError):
        return f"le corps n'est pas en UTF-8 (octet {error.start + 1})."
    if isinstance(error, ValueError) and "float" in str(error):
        return "NaN et Infinity ne sont pas du JSON."
    return "ce n'est pas du JSON."


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser with its refusal in French (« Multipart form parse error -
    Invalid boundary in multipart: None »)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except exceptions.ParseError:
            raise exceptions.ParseError(
                "Formulaire multipart illisible : le Content-Type doit donner un séparateur "
                "(« multipart/form-data; boundary=… ») que le corps emploie."
            ) from None


class ProblemNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, which runs before the key is looked at: a client that accepts nothing
    but `application/problem+json` got a 406 for everything, its missing key or its unknown box
    included. Such a client can read every error: the negotiation lets the call go on with the
    JSON renderer and marks it (`problems_only`); `ApiView.initial` answers 406 once the key, its
    scopes, its address and its rate have been checked, before the view does anything."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            accepted = [media.split(";")[0].strip().lower() for media in self.get_accept_list(request)]
            if CONTENT_TYPE not in accepted:
                raise
            request.problems_only = True
            return renderers[0], CONTENT_TYPE


def refuse_unsized_body(request) -> None:
    """A body sent in chunks without Content-Length never reaches Django (it reads
    CONTENT_LENGTH bytes, 0): rather than a misleading « champ obligatoire », a 411."""
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not request.META.get("CONTENT_LENGTH"):
        raise Problem("length_required", "Envoyez le corps avec un en-tête Content-Length (pas en « chunked »).")


def suspicious_problem(exc: SuspiciousOperation) -> tuple[str, str]:
    """The code and French detail of a request Django refuses as suspicious: too many form
    fields or files (DATA_UPLOAD_MAX_NUMBER_FIELDS / _FILES), a body over its cap, a Host not
    in ALLOWED_HOSTS. Under /api/ these were Django's HTML 400 page."""
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return "request_too_large", f"Le formulaire compte plus de {limit} champs."
    if isinstance(exc, TooManyFilesSent):
        return "request_too_large", f"La requête compte plus de {settings.DATA_UPLOAD_MAX_NUMBER_FILES} fichiers."
    if isinstance(exc, RequestDataTooBig):
        return "request_too_large", f"La requête dépasse {settings.API_MAX_REQUEST_BYTES} octets."
    if isinstance(exc, DisallowedHost):
        return "bad_request", "En-tête Host non autorisé pour ce serveur."
    return "bad_request", BAD_REQUEST


BAD_REQUEST = "Requête mal formée."


def declared_length(request) -> int:
    """The body's Content-Length as a number of bytes (0 without one). A value that is not a
    number (« abc », « 1e3 », « 0x10 ») was a 500 in the send view: a `bad_request` problem."""
    value = (request.META.get("CONTENT_LENGTH") or "0").strip()
    if not (value.isascii() and value.isdigit()):
        shown = value[:40]
        raise Problem("bad_request", f"En-tête Content-Length invalide : « {shown} » n'est pas un nombre d'octets.")
    return int(value)


MAX_BOUNDARY = 70  # RFC 2046 §5.1.1: a boundary is 1 to 70 characters


def check_multipart_boundary(request) -> None:
    """A form's boundary over RFC 2046's 70 characters is a `bad_request` that says so. Django
    read one up to 201 characters, answered « illisible » (422) past them, and past DRF's
    256-character Content-Type the answer was « type de média non supporté » (415)."""
    content_type = request.META.get("CONTENT_TYPE", "")
    if not content_type.lstrip().lower().startswith("multipart/form-data"):
        return
    try:
        boundary = parse_header_parameters(content_type)[1].get("boundary") or ""
    except ValueError:  # an undecodable RFC 2231 parameter: the parser's own refusal follows
        return
    if len(boundary) > MAX_BOUNDARY:
        raise Problem(
            "bad_request",
            f"Formulaire multipart illisible : séparateur (boundary) invalide, trop long ({len(boundary)} "
            f"caractères ; {MAX_BOUNDARY} au plus, RFC 2046).",
        )


def is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def problem_json(code: str, detail: str = "") -> JsonResponse:
    """A problem outside DRF's views (no route, an unexpected error), as DRF renders one."""
    body = problem_body(code, detail)
    return JsonResponse(
        body, status=body["status"], content_type=CONTENT_TYPE, json_dumps_params={"ensure_ascii": False}
    )


NO_ROUTE = "Aucune ressource de l'API à cette adresse."


@csrf_exempt  # a POST to a wrong path is a 404 problem, not the CSRF page
def no_route(request):
    """The last route of api/urls.py: under /api/, a path no other route matches (a trailing
    slash, an id that is not a number, an unknown version) is a `not_found` problem, with DEBUG
    on as off. It is a route rather than only `page_not_found` because with DEBUG on Django
    answers an unmatched path with its own HTML page and never calls handler404."""
    return problem_json("not_found", NO_ROUTE)


def bad_request(request, exception):
    """handler400 (DEBUG off): under /api/, a problem; elsewhere Django's page. (With DEBUG on,
    ServerErrorProblemMiddleware rewrites the debug page.)"""
    if is_api(request):
        return problem_json(*suspicious_problem(exception))
    return defaults.bad_request(request, exception)


def page_not_found(request, exception):
    """handler404: under /api/, a problem like every other answer of the API (a non-DRF view
    that raises Http404 with DEBUG off); elsewhere Django's page."""
    if is_api(request):
        return problem_json("not_found", NO_ROUTE)
    return defaults.page_not_found(request, exception)


SERVER_ERROR = "Erreur inattendue du serveur."


def server_error(request):
    """handler500: under /api/, a problem (the error is logged as Django logs it); elsewhere
    Django's page."""
    if is_api(request):
        return problem_json("server_error", SERVER_ERROR)
    return defaults.server_error(request)


class ServerErrorProblemMiddleware:
    """Under /api/, an unhandled error is a `server_error` problem with DEBUG on too.

    handler500 serves only with DEBUG off: with it on (scripts/run, where integrators try their
    software) Django answers with its technical HTML page. This middleware, first after the
    request id's, turns any 500 under /api/ that is not a problem already into one. It rewrites
    that response rather than answering another: the headers the other middleware set stay, and
    Django, which logged the error with its traceback (`django.request`) when it made the
    response, knows it logged this one and does not log it again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code not in (400, 500) or response.streaming or not is_api(request):
            return response
        if response.get("Content-Type", "").split(";")[0].strip() == CONTENT_TYPE:
            return response
        if response.status_code == 400:  # Django's debug page for a suspicious request
            problem = problem_json("bad_request", BAD_REQUEST)
        else:
            problem = problem_json("server_error", SERVER_ERROR)
        response.content = problem.content
        response["Content-Type"] = CONTENT_TYPE
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response
