"""What the API reads and answers (the OpenAPI document is generated from these)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils import html
from rest_framework.validators import ProhibitSurrogateCharactersValidator


class NoSurrogates(ProhibitSurrogateCharactersValidator):
    """DRF's refusal of lone surrogates, checked by one UTF-8 encode (what they would break
    later) instead of a Python loop over every character: a 2 KB text cost 0.3 ms a call."""

    def __call__(self, value):
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            super().__call__(value)  # the same message and code as DRF's


class TextField(serializers.CharField):
    """A CharField for subjects and bodies, with the fast surrogate check."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            NoSurrogates() if isinstance(v, ProhibitSurrogateCharactersValidator) else v for v in self.validators
        ]


# A media type as RFC 2045 §5.1 writes it: type/subtype (tokens), then `; name=value` parameters
# (a token or a quoted string), printable ASCII only: the value goes into the attachment's header.
TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
MEDIA_TYPE = re.compile(rf'{TOKEN}/{TOKEN}([ \t]*;[ \t]*{TOKEN}=({TOKEN}|"[\x20\x21\x23-\x5b\x5d-\x7e]*"))*[ \t]*;?')
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


INDEXED_ATTACHMENT = re.compile(r"attachments\[\d+\]")


class KnownFieldsOnly:
    """A body's member that no field reads is refused, named in `errors`: a misspelt or
    invented field (`bcc`, `attachement`, `body`, `notes`) was dropped without a word, and the
    message left without what the software meant to send."""

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            accepted = ", ".join(self.fields)
            message = f"Champ inconnu. Champs acceptés : {accepted}."
            form = html.is_html_input(data)
            unknown = {
                str(name): [message]
                for name in data
                if name not in self.fields and not (form and INDEXED_ATTACHMENT.match(name))
            }
            if form and "attachments" in data:  # DRF reads only `attachments[0].filename`… in a form
                unknown["attachments"] = ["En multipart, les fichiers se joignent dans « files »."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def too_many_attachments(count: int | None = None) -> str:
    """The French refusal of a call of more than API_MAX_ATTACHMENTS attachments; `count`
    None when Django stopped reading a form past its files' limit (the same number)."""
    limit = settings.API_MAX_ATTACHMENTS
    counted = f"{count} pièces jointes" if count is not None else f"Plus de {limit} pièces jointes"
    return f"{counted} : {limit} au plus par message."


class AttachmentList(serializers.ListSerializer):
    """`attachments`: their number is checked before any is decoded (2000 tiny ones were sent)."""

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > settings.API_MAX_ATTACHMENTS:
            raise serializers.ValidationError([too_many_attachments(len(data))])
        return super().to_internal_value(data)


def upload_content_type(upload) -> str:
    """A multipart file's type, read as the JSON `content_type` is: its part's Content-Type
    header, `type/sous-type` (Django keeps the parameters apart); none is
    application/octet-stream, as a JSON attachment without `content_type`."""
    declared = (upload.content_type or "").strip()
    if not declared:
        return "application/octet-stream"
    if not MEDIA_TYPE.fullmatch(declared):
        shown = CONTROL.sub("?", declared[:80])
        raise serializers.ValidationError(
            f"Type de contenu « {shown} » de « {upload.name} » invalide : attendu « type/sous-type » "
            "(ex. application/pdf) dans l'en-tête Content-Type de sa partie."
        )
    return declared


class UploadList(serializers.ListField):
    """`files` (multipart): their number as `attachments`', each part's declared type checked."""

    child = serializers.FileField()

    def to_internal_value(self, data):
        if isinstance(data, list | tuple) and len(data) > settings.API_MAX_ATTACHMENTS:
            raise serializers.ValidationError([too_many_attachments(len(data))])
        uploads = super().to_internal_value(data)
        errors = {}
        for index, upload in enumerate(uploads):
            try:
                upload.content_type = upload_content_type(upload)
            except serializers.ValidationError as exc:
                errors[index] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return uploads


class AttachmentIn(KnownFieldsOnly, serializers.Serializer):
    class Meta:
        list_serializer_class = AttachmentList

    filename = serializers.CharField(max_length=255, help_text="Le nom du fichier (sans chemin).")
    content_type = serializers.CharField(
        max_length=255,
        required=False,
        default="application/octet-stream",
        help_text="type/sous-type, paramètres « ; nom=valeur » permis (ASCII imprimable).",
    )
    content_base64 = serializers.CharField(help_text="Le contenu du fichier en base64.")

    def validate_filename(self, value):
        """The name without a path (as a multipart upload's), and no control character: the
        name goes into the attachment's Content-Disposition header."""
        if CONTROL.search(value):
            raise serializers.ValidationError("Le nom du fichier contient un caractère de contrôle.")
        name = value.replace("\\", "/").rsplit("/", 1)[-1].strip()
        if not name or name in (".", ".."):
            raise serializers.ValidationError("Nom de fichier attendu.")
        return name

    def validate_content_type(self, value):
        if not MEDIA_TYPE.fullmatch(value):
            raise serializers.ValidationError("Type de contenu attendu : « type/sous-type » (ex. application/pdf).")
        return value

    def validate_content_base64(self, value):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Base64 invalide.") from None


class AddressList(serializers.ListField):
    """A list of addresses; in a form (multipart), the field may repeat or hold a comma list."""

    child = serializers.EmailField()

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):  # QueryDict of a multipart form
            data = data.getlist(self.field_name)
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list | tuple):
            self.fail("not_a_list", input_type=type(data).__name__)
        flat = []
        for value in data:
            flat += [v.strip() for v in str(value).split(",") if v.strip()] if isinstance(value, str) else [value]
        return super().to_internal_value(flat)


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class JSONObjectField(serializers.JSONField):
    """An object of texts (a number or a boolean is taken as its text); in a form, a JSON text."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data or "{}")
            except ValueError:
                raise serializers.ValidationError("JSON invalide.") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("Un objet JSON est attendu.")
        if any(isinstance(v, dict | list) or v is None for v in data.values()):
            # str() would have put a Python repr ("{'a': 1}", "None") into the patient's message.
            raise serializers.ValidationError("La valeur de chaque champ est un texte.")
        return {str(k): str(v) for k, v in data.items()}


def message_fields() -> dict:
    """The fields of `MessageIn`, new for each serializer. DRF gives each serializer a deep copy
    of the fields declared on its class, which costs more than building them: 174 µs of a call's
    227 µs of validation (bench/RESULTS.md issue 10). The order is the documented one."""
    return {
        "to": AddressList(min_length=1, max_length=100, help_text="Destinataires : professionnels et/ou patients."),
        "cc": AddressList(required=False, default=list, max_length=100),
        "subject": TextField(max_length=900, required=False, allow_blank=True, default=""),
        "text": TextField(required=False, allow_blank=True, default="", trim_whitespace=False),
        "html": TextField(required=False, allow_blank=True, default="", trim_whitespace=False),
        "attachments": AttachmentIn(many=True, required=False, default=list, help_text="JSON : fichiers en base64."),
        "files": UploadList(
            required=False,
            default=list,
            help_text="Multipart : fichiers joints, chacun avec son type dans l'en-tête Content-Type de sa partie.",
        ),
        "request_read_receipt": serializers.BooleanField(required=False, default=False),
        "in_reply_to": serializers.CharField(
            max_length=998,
            required=False,
            allow_blank=True,
            default="",
            help_text="Message-ID du message auquel on répond.",
        ),
        "model": serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="Id d'un modèle de message."
        ),
        "fields": JSONObjectField(required=False, default=dict, help_text="Valeurs des champs du modèle."),
    }


class MessageIn(KnownFieldsOnly, serializers.Serializer):
    # No docstring: drf-spectacular would publish it as the schema's description.
    def get_fields(self):
        return message_fields()

    def validate(self, data):
        if data.get("model") is None and not (data.get("subject") or "").strip():
            raise serializers.ValidationError({"subject": "L'objet est obligatoire (sauf avec un modèle)."})
        if data.get("model") is None and not (data.get("text") or data.get("html")):
            raise serializers.ValidationError({"text": "Le texte est obligatoire (sauf avec un modèle)."})
        return data


class RecipientOutcome(serializers.Serializer):
    address = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["delivered", "queued", "refused"])
    code = serializers.CharField(required=False)
    reason = serializers.CharField(required=False, help_text="La raison en français.")
    message = serializers.IntegerField(
        allow_null=True,
        help_text="Le message stocké qui porte ce destinataire (GET /api/v1/messages/{id}) ; null pour un "
        "destinataire refusé sans copie stockée (patient parmi plusieurs : espace clôturé, clé INS fausse, "
        "patient inconnu), que GET /api/v1/messages/{id} de l'id de la réponse donne.",
    )
    message_id = serializers.CharField(
        allow_null=True,
        help_text="Le Message-ID de la copie destinée à cette adresse ; pour une copie refusée, celui que "
        "son retour automatique cite dans In-Reply-To et References. null si aucune copie n'a été écrite "
        "(modèle de message vers une adresse sans patient : pas de retour automatique).",
    )


class SentMessage(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.CharField(help_text="L'en-tête Message-ID.")
    recipients = RecipientOutcome(many=True)


class SendResult(serializers.Serializer):
    id = serializers.IntegerField(help_text="Le message (le premier quand il y a un message par patient).")
    message_id = serializers.CharField()
    recipients = RecipientOutcome(many=True)
    messages = SentMessage(many=True, help_text="Un message par patient quand plusieurs patients sont adressés.")


class TimelineStep(serializers.Serializer):
    at = serializers.DateTimeField()
    event = serializers.CharField(help_text="submitted, delivered, relayed, bounced, refused, returned, read")
    recipient = serializers.CharField(allow_blank=True)


class RecipientState(serializers.Serializer):
    address = serializers.CharField()
    status = serializers.CharField(help_text="delivered, queued, relayed, bounced, returned, read")
    code = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField()
    timeline = TimelineStep(many=True)
    message = serializers.IntegerField(
        allow_null=True,
        help_text="Le message qui porte ce destinataire : celui-ci, une autre copie du même envoi (un "
        "message par patient), ou null pour une copie refusée entière (rien de stocké).",
    )
    message_id = serializers.CharField(
        allow_null=True,
        help_text="Le Message-ID de cette copie ; pour une copie refusée, celui que cite l'In-Reply-To de "
        "son retour automatique.",
    )


class MessageStatus(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.CharField()
    subject = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    recipients = RecipientState(many=True)


class AttachmentOut(serializers.Serializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.CharField()


class BoxMessage(serializers.Serializer):
    id = serializers.IntegerField(help_text="L'entrée dans la boîte (pour /raw et les pièces jointes).")
    message = serializers.IntegerField(help_text="Le message (GET /api/v1/messages/{id}).")
    message_id = serializers.CharField()
    in_reply_to = serializers.CharField(allow_blank=True)
    folder = serializers.CharField()
    received_at = serializers.DateTimeField()
    from_address = serializers.CharField(source="from_")
    to = serializers.ListField(child=serializers.CharField())
    subject = serializers.CharField()
    text = serializers.CharField()
    seen = serializers.BooleanField()
    raw_url = serializers.CharField()
    attachments = AttachmentOut(many=True)


class BoxMessagePage(serializers.Serializer):
    results = BoxMessage(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="La page suivante ; null à la fin.")
    resume_cursor = serializers.CharField(
        allow_null=True,
        help_text="Après le dernier message de cette page : à garder pour lire plus tard ce qui arrive ensuite.",
    )


class ReplyDocumentOut(serializers.Serializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["profile", "health", "admin", "device"])
    url = serializers.CharField()


class PatientOut(serializers.Serializer):
    ins = serializers.CharField()
    address = serializers.CharField()
    birth_name = serializers.CharField()
    usage_name = serializers.CharField(allow_blank=True)
    first_names = serializers.CharField()
    birth_date = serializers.DateField()
    sex = serializers.CharField()


class ReplyOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["to_process", "filed"])
    entry = serializers.IntegerField()
    message = serializers.IntegerField()
    message_id = serializers.CharField()
    received_at = serializers.DateTimeField()
    subject = serializers.CharField()
    text = serializers.CharField()
    in_reply_to_message = serializers.IntegerField(
        allow_null=True, help_text="Le message envoyé auquel répond le patient."
    )
    in_reply_to_message_id = serializers.CharField(allow_blank=True)
    matched_by = serializers.CharField()
    patient = PatientOut(allow_null=True)
    documents = ReplyDocumentOut(many=True)
    note = serializers.CharField(allow_blank=True)
    filed_at = serializers.DateTimeField(allow_null=True)


class ReplyPage(serializers.Serializer):
    results = ReplyOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class FileIn(KnownFieldsOnly, serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class Problem(serializers.Serializer):
    type = serializers.CharField(help_text="urn:mssante:api:problem:<code>, stable.")
    title = serializers.CharField(help_text="Titre en français.")
    title_en = serializers.CharField(help_text="Title in English.")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="Explication en français.")
    code = serializers.CharField()
    errors = serializers.DictField(
        required=False,
        help_text="validation_error : champ → liste de messages ; un champ imbriqué garde son imbrication "
        '({"attachments": {"1": {"filename": […]}}}, {"to": {"1": […]}}), que detail nomme en pointé.',
    )
    recipients = RecipientOutcome(many=True, required=False)
    remaining_today = serializers.IntegerField(
        required=False, help_text="daily_limit_reached : ce que la boîte peut encore envoyer aujourd'hui."
    )
    daily_limit = serializers.IntegerField(required=False, help_text="daily_limit_reached : la limite quotidienne.")
