"""The REST API v1 (issue 10): views parse, call one service, answer. Every object is fetched
through `api.access`; every call leaves an `api.call` audit event naming the key's id (never the
key); errors are problem details (`api.problems`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import FileResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import access, hooks, idempotency, listing, returns, sending
from api import serializers as s
from api.auth import ApiKeyAuthentication, HasScope, KeyRateThrottle, request_ip
from api.models import ApiKey, ReturnReply
from api.problems import (
    CONTENT_TYPE,
    JSONParser,
    MultiPartParser,
    Problem,
    ProblemNegotiation,
    check_multipart_boundary,
    declared_length,
    refuse_unsized_body,
)
from audit.events import record
from audit.models import AuditEvent
from mailboxes.delivery import events_with_next_delivery, message_history, refusal_reason
from mailboxes.models import Attachment, Entry, Folder, SentRecipient

PROBLEM_DESCRIPTIONS = {
    401: "Clé absente, invalide, révoquée ou expirée",
    403: "Portée, adresse IP ou certificat refusés",
    404: "Introuvable (ou pas à cette clé)",
    406: "Format de réponse non disponible (Accept)",
    409: "Clé d'idempotence réutilisée ou en cours",
    411: "Corps sans Content-Length (chunked)",
    413: "Trop volumineux",
    415: "Type de contenu non pris en charge",
    422: "Invalide ou refusé",
    429: "Trop de requêtes, ou limite quotidienne d'envoi de la boîte atteinte (Retry-After)",
    503: "Refus temporaire (Retry-After)",
}


def problems(*codes: int) -> dict:
    """The error answers of an operation, documented as what they are served as: problem
    details in `application/problem+json` (api/problems.py), with the statuses every call may
    get (no key, scope, not found, Accept, rate) and the operation's own `codes`."""
    return {
        (code, CONTENT_TYPE): OpenApiResponse(s.Problem, description=PROBLEM_DESCRIPTIONS[code])
        for code in sorted({401, 403, 404, 406, 429, *codes})
    }


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[409, 429, 503],
    description="Secondes à attendre avant de réessayer.",
)
SEND_HEADERS = [
    OpenApiParameter(
        "Location",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[201],
        description="L'état du message envoyé : /api/v1/messages/{id}.",
    ),
    OpenApiParameter(
        "Idempotent-Replayed",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        enum=["true"],
        response=[201, 409, 413, 422, 429, 503],
        description="La première réponse à cette clé d'idempotence, rejouée ; rien n'est envoyé.",
    ),
    RETRY_AFTER,
]
LIMIT_PARAMETER = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    description="1 à 200 (50) ; toute autre valeur est refusée (422), jamais ramenée dans l'intervalle.",
)


class ApiView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [KeyRateThrottle]
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    content_negotiation_class = ProblemNegotiation
    required_scopes: tuple[str, ...] = ("read",)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        refuse_unsized_body(request)
        declared_length(request)
        check_multipart_boundary(request)
        if getattr(request, "problems_only", False):
            raise exceptions.NotAcceptable()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if not getattr(self, "call_audited", False):
            self.audit_call(request, response.status_code)
        return response

    def call_event(self, request, status_code: int) -> dict:
        """The call's audit event (the fields of its row): the key's id, the view, the method
        and the status."""
        key = request.auth if isinstance(getattr(request, "auth", None), ApiKey) else None
        return {
            "action": "api.call",
            "actor_label": f"api-key:{key.pk}" if key else "api",
            "object_type": "apikey" if key else "",
            "object_id": str(key.pk) if key else "",
            "mailbox_id": key.mailbox_id if key else None,
            "outcome": str(status_code),
            "detail": {"method": request.method, "view": type(self).__name__, "status": status_code},
            "ip": request_ip(request),
        }

    def audit_call(self, request, status_code: int) -> None:
        record(**self.call_event(request, status_code))
        self.call_audited = True


class DocsView(SpectacularSwaggerSplitView):
    """The reference page (Swagger UI), GET and HEAD only. Its errors are problems in JSON: the
    page's HTML renderer has no template for them (OPTIONS was a 500, PUT a text body under a
    problem+json Content-Type)."""

    http_method_names = ["get", "head"]

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), CONTENT_TYPE
        return super().finalize_response(request, response, *args, **kwargs)


# --- Sending -----------------------------------------------------------------------------------


class MessagesView(ApiView):
    required_scopes = ("send",)

    @extend_schema(
        operation_id="send_message",
        summary="Envoyer un message depuis la boîte de la clé",
        request={"application/json": s.MessageIn, "multipart/form-data": s.MessageIn},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, description="Rejouable 24 h."
            ),
            *SEND_HEADERS,
        ],
        responses={201: s.SendResult, **problems(409, 411, 413, 415, 422, 503)},
    )
    def post(self, request):
        if declared_length(request) > settings.API_MAX_REQUEST_BYTES:
            raise Problem("request_too_large", f"La requête dépasse {settings.API_MAX_REQUEST_BYTES} octets.")
        incoming = s.MessageIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        attachments = sending.attachments_of(data)
        record_ = None
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None:
            record_, earlier = idempotency.begin(
                request.auth, idempotency_key, sending.body_fingerprint(data, attachments)
            )
            if earlier is not None:  # the first answer again, a problem as a problem
                return Response(
                    earlier.response,
                    status=earlier.status_code,
                    headers={"Idempotent-Replayed": "true", **created_at(earlier.status_code, earlier.response)},
                    content_type=CONTENT_TYPE if earlier.status_code >= 400 else None,
                )
        # The delivery, the idempotency answer and the call's audit event commit together (one
        # commit per call): the event goes in with the delivery's rows and audit events
        # (`events_with_next_delivery`), and the call's own transaction wraps the delivery only
        # when it writes more than one delivery's transaction holds (`sending.needs_one_transaction`).
        # A refusal leaves the block first, so its own audit event stays.
        problem = None
        together = sending.needs_one_transaction(data, idempotent=record_ is not None)
        try:
            with (
                hooks.sender_known(request.auth.mailbox, getattr(request.auth, "box_has_webhook", None)),
                transaction.atomic() if together else contextlib.nullcontext(),
                events_with_next_delivery([self.call_event(request, 201)]) as call,
            ):
                try:
                    body = sending.send(request.auth, data, attachments)
                except Problem as refused:
                    problem = refused
                else:
                    if record_ is not None:
                        idempotency.finish(record_, 201, body)
                    if not call.written:  # no delivery wrote anything (a duplicate): on its own
                        self.audit_call(request, 201)
        except Exception:
            if record_ is not None:  # nothing was sent: a retry with the same key may send
                idempotency.finish(record_, 500, None)
            raise
        if call.written and problem is None:  # committed: with the delivery, or with the block above
            self.call_audited = True
        if problem is not None:
            if record_ is not None:
                response = self.handle_exception(problem)
                idempotency.finish(record_, response.status_code, response.data)
            raise problem
        return Response(body, status=status.HTTP_201_CREATED, headers=created_at(201, body))


def created_at(status_code: int, body) -> dict:
    """`Location` of a `201`: the sent message's status (its first message when there is one
    per patient), as a path on this server."""
    if status_code != status.HTTP_201_CREATED or not isinstance(body, dict) or "id" not in body:
        return {}
    return {"Location": reverse("api:message", kwargs={"message_id": body["id"]})}


STEP_EVENTS = {
    AuditEvent.Action.SUBMITTED: "submitted",
    AuditEvent.Action.DELIVERED: "delivered",
    AuditEvent.Action.RELAYED: "relayed",
    AuditEvent.Action.BOUNCED: "bounced",
    AuditEvent.Action.REFUSED: "refused",
    AuditEvent.Action.RETURNED: "returned",
    AuditEvent.Action.READ: "read",
}


def message_status(message) -> dict:
    """The message's recipients, each with its status and timeline; for the message a call
    answered with (its `id`), also the call's other recipients (`mailboxes.models.SentRecipient`): a
    patient's own copy, read in that copy, and a copy refused whole, as the `201` told it."""
    own = recipient_states(message)
    kept = list(SentRecipient.objects.filter(sent=message).select_related("copy").order_by("id"))
    others: list[dict] = []
    copies: dict[int, dict[str, dict]] = {}
    for row in kept:
        if row.copy is None:
            others.append(refused_whole_state(row, own["submitted_at"]))
            continue
        if row.copy_id not in copies:
            copies[row.copy_id] = {r["address"]: r for r in recipient_states(row.copy)["recipients"]}
        state = copies[row.copy_id].get(row.address)
        if state is not None:
            others.append(state)
    own["recipients"] += others
    return own


def refused_whole_state(row: SentRecipient, submitted_at) -> dict:
    return {
        "address": row.address,
        "status": "bounced",
        "code": row.code,
        "reason": row.reason,
        "updated_at": row.created_at,
        "timeline": [
            {"at": submitted_at, "event": "submitted", "recipient": row.address},
            {"at": row.created_at, "event": "refused", "recipient": row.address},
        ],
        "message": None,
        "message_id": row.message_id or None,
    }


def recipient_states(message) -> dict:
    history = message_history(message, STEP_EVENTS)
    steps: dict[str, list] = {d.address: [] for d in history.deliveries}
    addresses = {d.pk: d.address for d in history.deliveries}
    submitted = None
    for item in history.events:
        event = item.event
        if event.action == AuditEvent.Action.SUBMITTED:
            submitted = submitted or event.at
            concerned = list(steps)
        elif item.delivery is not None:
            concerned = [item.delivery.address]
        else:  # the relay's event names the recipients it concerns by their Delivery ids
            listed = item.detail.get("deliveries")
            concerned = [addresses[pk] for pk in listed if pk in addresses] if isinstance(listed, list) else []
        for address in concerned:
            steps[address].append({"at": event.at, "event": STEP_EVENTS[event.action], "recipient": address})
    return {
        "id": message.pk,
        "message_id": message.message_id,
        "subject": message.subject,
        "submitted_at": submitted or message.created_at,
        "recipients": [
            {
                "address": d.address,
                "status": d.status,
                "code": d.reason,
                "reason": refusal_reason(d),
                "updated_at": d.updated_at,
                "timeline": steps[d.address],
                "message": message.pk,
                "message_id": message.message_id,
            }
            for d in history.deliveries
        ],
    }


class MessageView(ApiView):
    required_scopes = ("send", "read")

    @extend_schema(
        operation_id="get_message",
        summary="État d'un message et chronologie par destinataire",
        parameters=[RETRY_AFTER],
        responses={200: s.MessageStatus, **problems()},
    )
    def get(self, request, message_id: int):
        message = access.message_for_key(request.auth, message_id)
        return Response(s.MessageStatus(message_status(message)).data)


# --- Reading a box -----------------------------------------------------------------------------


def encode_cursor(value: int, kind: str = "e") -> str:
    """An opaque cursor: `kind` "e" an id (replies; box listings before api/listing.py), "p" a
    place in a box's reading order."""
    return base64.urlsafe_b64encode(f"{kind}{value}".encode()).decode().rstrip("=")


def decode_cursor(value: str, kinds: str = "e") -> tuple[str, int]:
    """(kind, value) of a cursor of one of `kinds`; a problem for anything else."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        if not text or text[0] not in kinds:
            raise ValueError
        return text[0], int(text[1:])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Problem("validation_error", extra={"errors": {"cursor": ["Curseur invalide."]}}) from None


# The roles `folder=` takes in a box listing, `user` meaning every personal folder of the box;
# any other value must be the name of one personal folder. The check, its 422 text and the
# OpenAPI document all read this one list.
FOLDER_ROLES: tuple[str, ...] = tuple(Folder.Role.values)
FOLDER_ROLE_NOTES = {Folder.Role.USER: "tous les dossiers personnels"}


def folder_roles_text() -> str:
    """`inbox, sent, …, user (tous les dossiers personnels)`: the roles as the 422 and the
    OpenAPI document say them."""
    return ", ".join(f"{r} ({FOLDER_ROLE_NOTES[r]})" if r in FOLDER_ROLE_NOTES else r for r in FOLDER_ROLES)


FOLDER_PARAMETER = OpenApiParameter(
    "folder",
    # A role of the list, or any folder name: the enum tells software the roles, the second
    # branch keeps a personal folder's name valid.
    {"anyOf": [{"type": "string", "enum": list(FOLDER_ROLES)}, {"type": "string", "minLength": 1}]},
    description=f"{folder_roles_text()}, ou le nom d'un dossier personnel de la boîte.",
)


def unknown_folder(mailbox, folder: str) -> str:
    names = list(
        Folder.objects.filter(mailbox=mailbox, role=Folder.Role.USER).order_by("name").values_list("name", flat=True)
    )
    accepted = folder_roles_text()
    if names:
        accepted += ", ou un dossier personnel : " + ", ".join(f"« {n} »" for n in names)
    return f"Dossier « {folder} » inconnu dans cette boîte : {accepted}."


def since_error(value: str) -> str:
    """Why `since` was refused; an offset whose `+` the query string turned into a space
    (`?since=2026-12-01T10:00:00+01:00` sent as such) is said, with how to write it."""
    if re.search(r"\d \d{2}:?\d{2}$", value):
        return "Date ISO 8601 attendue : dans l'adresse, « + » se lit comme une espace ; écrivez %2B (ou Z en UTC)."
    return "Date ISO 8601 attendue."


def page_limit(request) -> int:
    """`limit`: an integer from 1 to 200 (50 without it); anything else is refused, not clamped."""
    try:
        limit = int(request.query_params.get("limit", 50))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 200:
        raise Problem("validation_error", extra={"errors": {"limit": ["Un entier de 1 à 200."]}})
    return limit


def box_url(request, name: str, **kwargs) -> str:
    return reverse(f"api:{name}", kwargs=kwargs)


def entry_data(request, box: str, entry: Entry, attachments) -> dict:
    message = entry.message
    return {
        "id": entry.pk,
        "message": message.pk,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "folder": entry.folder.role if entry.folder.role != Folder.Role.USER else entry.folder.name,
        "received_at": entry.received_at,
        "from_": message.from_address,
        "to": [a.get("address", "") for a in message.to],
        "subject": message.subject,
        "text": message.text_body,
        "seen": entry.seen,
        "raw_url": box_url(request, "raw", box=box, entry_id=entry.pk),
        "attachments": [
            {
                "id": a.pk,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "url": box_url(request, "attachment", box=box, entry_id=entry.pk, attachment_id=a.pk),
            }
            for a in attachments.get(message.pk, [])
        ],
    }


class BoxMessagesView(ApiView):
    @extend_schema(
        operation_id="list_box_messages",
        summary="Messages d'une boîte, du plus ancien au plus récent, par curseur",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Reçus à partir de (ISO 8601)."),
            FOLDER_PARAMETER,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="next_cursor de la page précédente."),
            LIMIT_PARAMETER,
            RETRY_AFTER,
        ],
        responses={200: s.BoxMessagePage, **problems(422)},
    )
    def get(self, request, box: str):
        mailbox = access.box_for_key(request.auth, box)
        listing.number_new_entries(mailbox.pk)
        entries = Entry.objects.filter(mailbox=mailbox, api_position__isnull=False)
        entries = entries.select_related("message", "folder").order_by("api_position")
        params = request.query_params
        if params.get("since"):
            try:
                since = parse_datetime(params["since"])
            except ValueError:  # well formed, but no such date (a 13th month, a 99-hour offset)
                since = None
            if since is None:
                raise Problem("validation_error", extra={"errors": {"since": [since_error(params["since"])]}})
            entries = entries.filter(received_at__gte=since)
        if params.get("folder"):
            folder = params["folder"]
            if "\x00" in folder:  # no folder is named so (and PostgreSQL takes no NUL in text)
                raise Problem("validation_error", extra={"errors": {"folder": ["Nom de dossier invalide."]}})
            if folder in FOLDER_ROLES:
                entries = entries.filter(folder__role=folder)
            elif Folder.objects.filter(mailbox=mailbox, name=folder).exists():
                entries = entries.filter(folder__name=folder)
            else:  # a typo (`INBOX`, `Sent`) is said, not answered with an empty page
                raise Problem("validation_error", extra={"errors": {"folder": [unknown_folder(mailbox, folder)]}})
        if params.get("cursor"):
            position = listing.position_after(mailbox.pk, *decode_cursor(params["cursor"], "pe"))
            entries = entries.filter(api_position__gt=position)
        limit = page_limit(request)
        page = list(entries[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        attachments: dict[int, list] = {}
        for a in Attachment.objects.filter(message_id__in=[e.message_id for e in page]).order_by("position"):
            attachments.setdefault(a.message_id, []).append(a)
        results = [entry_data(request, box, e, attachments) for e in page]
        after_last = encode_cursor(page[-1].api_position, "p") if page else params.get("cursor") or None
        body = {"results": results, "next_cursor": after_last if more else None, "resume_cursor": after_last}
        return Response(s.BoxMessagePage(body).data)


class RawView(ApiView):
    @extend_schema(
        operation_id="get_raw_message",
        summary="Le message tel qu'envoyé ou reçu (.eml)",
        parameters=[RETRY_AFTER],
        responses={(200, "message/rfc822"): OpenApiTypes.BINARY, **problems()},
    )
    def get(self, request, box: str, entry_id: int):
        entry = access.entry_for_key(request.auth, box, entry_id)
        if request.method != "HEAD":  # headers only, nothing read (the call's own event says HEAD)
            record(
                AuditEvent.Action.EXPORTED,
                actor_label=f"api-key:{request.auth.pk}",
                mailbox_id=entry.mailbox_id,
                message_id=entry.message_id,
                object_type="message",
                object_id=entry.message_id,
                request=request,
            )
        handle = default_storage.open(entry.message.raw.name, "rb")
        return FileResponse(
            handle, content_type="message/rfc822", as_attachment=True, filename=f"message-{entry.message_id}.eml"
        )


class AttachmentView(ApiView):
    @extend_schema(
        operation_id="get_attachment",
        summary="Télécharger une pièce jointe",
        parameters=[RETRY_AFTER],
        responses={(200, "*/*"): OpenApiTypes.BINARY, **problems()},
    )
    def get(self, request, box: str, entry_id: int, attachment_id: int):
        attachment, entry = access.attachment_for_key(request.auth, box, entry_id, attachment_id)
        if request.method != "HEAD":  # headers only, nothing read (the call's own event says HEAD)
            record(
                AuditEvent.Action.DOWNLOADED,
                actor_label=f"api-key:{request.auth.pk}",
                obj=attachment,
                mailbox_id=entry.mailbox_id,
                message_id=entry.message_id,
                request=request,
            )
        handle = default_storage.open(attachment.file.name, "rb")
        return FileResponse(
            handle, content_type=attachment.content_type, as_attachment=True, filename=attachment.filename
        )


# --- The return-box queue ----------------------------------------------------------------------


def reply_data(request, box: str, reply: ReturnReply) -> dict:
    patient = reply.patient
    message = reply.message
    return {
        "id": reply.pk,
        "status": reply.status,
        "entry": reply.entry_id,
        "message": message.pk,
        "message_id": message.message_id,
        "received_at": message.created_at,
        "subject": message.subject,
        "text": message.text_body,
        "in_reply_to_message": reply.original_id,
        "in_reply_to_message_id": reply.original.message_id if reply.original_id else "",
        "matched_by": reply.matched_by,
        "patient": None
        if patient is None
        else {
            "ins": patient.ins,
            "address": patient.mailbox.address if patient.mailbox_id else "",
            "birth_name": patient.birth_name,
            "usage_name": patient.usage_name,
            "first_names": patient.first_names,
            "birth_date": patient.birth_date,
            "sex": patient.sex,
        },
        "documents": [
            {
                "id": d.attachment_id,
                "filename": d.filename,
                "content_type": d.content_type,
                "size": d.size,
                "kind": d.kind,
                "url": box_url(request, "attachment", box=box, entry_id=reply.entry_id, attachment_id=d.attachment_id),
            }
            for d in returns.documents(reply)
        ],
        "note": reply.note,
        "filed_at": reply.filed_at,
    }


class RepliesView(ApiView):
    @extend_schema(
        operation_id="list_replies",
        summary="File des réponses de patients de la boîte de retour",
        parameters=[
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=["to_process", "filed", "all"], description="to_process par défaut."
            ),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            LIMIT_PARAMETER,
            RETRY_AFTER,
        ],
        responses={200: s.ReplyPage, **problems(422)},
    )
    def get(self, request, box: str):
        mailbox = access.box_for_key(request.auth, box)
        wanted = request.query_params.get("status", ReturnReply.Status.TO_PROCESS)
        if wanted not in (*ReturnReply.Status.values, "all"):
            raise Problem("validation_error", extra={"errors": {"status": ["to_process, filed ou all."]}})
        replies = (
            returns.queue(mailbox, None if wanted == "all" else wanted)
            .select_related("patient__mailbox")
            .order_by("id")
        )
        if request.query_params.get("cursor"):
            replies = replies.filter(id__gt=decode_cursor(request.query_params["cursor"])[1])
        limit = page_limit(request)
        page = list(replies[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        body = {
            "results": [reply_data(request, box, r) for r in page],
            "next_cursor": encode_cursor(page[-1].pk) if more else None,
        }
        return Response(s.ReplyPage(body).data)


class FileReplyView(ApiView):
    @extend_schema(
        operation_id="file_reply",
        summary="Classer une réponse (avec une note)",
        request=s.FileIn,
        parameters=[RETRY_AFTER],
        responses={200: s.ReplyOut, **problems(411, 415, 422)},
    )
    def post(self, request, box: str, reply_id: int):
        reply = access.reply_for_key(request.auth, box, reply_id)
        incoming = s.FileIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        returns.file_reply(reply, key=request.auth, note=incoming.validated_data["note"])
        return Response(s.ReplyOut(reply_data(request, box, reply)).data)
