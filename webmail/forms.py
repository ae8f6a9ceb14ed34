"""Forms of the webmail: compose (with attachments and the sending box) and search."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from mailboxes.display_text import display_name
from mailboxes.formatting import composed_bodies
from mailboxes.identifiers import ins_error, normalise_ins
from mailboxes.trust import InvalidAddress, normalise_address
from patients.policy import test_address
from webmail.search import Criteria

MAX_RECIPIENTS = 100


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


def parse_recipients(value: str, names: dict | None = None) -> tuple[list[str], list[str]]:
    """Addresses separated by commas or semicolons; a bare INS becomes the patient address.
    Returns (addresses, French error messages). `names`, when given, receives the display name
    typed before an address (`Secrétariat cardio <cardio@…>`, as a reply to a `Reply-To` with a
    name proposes it), by normalised address: the message sent keeps it in its `To:`/`Cc:`."""
    addresses, errors = [], []
    for raw in (value or "").replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        name = ""
        if "<" in item and item.endswith(">"):
            name = display_name(item[: item.rindex("<")].strip().strip('"'))
            item = item[item.rindex("<") + 1 : -1].strip()
        local = item.split("@", 1)[0]
        if "@" not in item and normalise_ins(local)[:1].isdigit():
            message = ins_error(local)
            if message:
                errors.append(message)
                continue
            item = f"{normalise_ins(local)}@{settings.PATIENT_DOMAIN}"
        elif item.lower() == test_address():
            pass  # the test address of the patient domain (RULES.md §3) is not an INS
        elif item.lower().endswith("@" + settings.PATIENT_DOMAIN):
            message = ins_error(local)
            if message:
                errors.append(message)
                continue
            item = f"{normalise_ins(local)}@{settings.PATIENT_DOMAIN}"
        try:
            address = normalise_address(item)
        except InvalidAddress:
            errors.append(_("« %(v)s » n'est pas une adresse de messagerie valide.") % {"v": raw.strip()})
            continue
        if address not in addresses:
            addresses.append(address)
        if name and names is not None:
            names.setdefault(address, name)
    return addresses, errors


class ComposeForm(forms.Form):
    sender = forms.TypedChoiceField(label=_("Envoyer depuis"), coerce=int)
    to = forms.CharField(
        label=_("À"),
        required=False,
        help_text=_("Adresses séparées par des virgules ; pour un patient, son matricule INS suffit."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    cc = forms.CharField(
        label=_("Copie à"), required=False, widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"})
    )
    subject = forms.CharField(label=_("Objet"), required=False, max_length=900)
    body = forms.CharField(label=_("Message"), required=False, widget=forms.Textarea(attrs={"rows": 14}))
    # The formatted version from the editor (static/js/editor.js); cleaned in `clean`.
    body_html = forms.CharField(required=False, widget=forms.HiddenInput)
    request_mdn = forms.BooleanField(label=_("Demander un accusé de lecture"), required=False)
    attachments = MultipleFileField(label=_("Pièces jointes"), required=False)
    keep_attachments = forms.TypedMultipleChoiceField(
        label=_("Pièces jointes du message d'origine"),
        required=False,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
    )
    reply_to = forms.IntegerField(required=False, widget=forms.HiddenInput)
    mode = forms.ChoiceField(
        required=False,
        choices=[("", ""), ("reply", "reply"), ("all", "all"), ("forward", "forward")],
        widget=forms.HiddenInput,
    )
    draft = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, boxes, user, draft: bool = False, forward_attachments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.boxes = {b.pk: b for b in boxes}
        self.user = user
        self.is_draft = draft
        # The display names typed before the recipients' addresses (`parse_recipients`).
        self.recipient_names: dict[str, str] = {}
        self.fields["sender"].choices = [
            (b.pk, f"{b.display_name} <{b.address}>" if b.display_name else b.address) for b in boxes
        ]
        self.forward_attachments = list(forward_attachments)
        self.fields["keep_attachments"].choices = [(a.pk, a.filename) for a in self.forward_attachments]

    def clean_sender(self):
        return self.boxes[self.cleaned_data["sender"]]

    def _recipients(self, name):
        addresses, errors = parse_recipients(self.cleaned_data.get(name, ""), self.recipient_names)
        if errors and not self.is_draft:
            raise forms.ValidationError(errors)
        return addresses

    def clean_to(self):
        return self._recipients("to")

    def clean_cc(self):
        return self._recipients("cc")

    def clean_attachments(self):
        files = self.cleaned_data.get("attachments") or []
        for item in files:
            if item.size > settings.ATTACHMENT_MAX_BYTES:
                raise forms.ValidationError(
                    _("« %(f)s » pèse %(s)s : une pièce jointe ne peut dépasser %(m)s.")
                    % {
                        "f": item.name,
                        "s": filesizeformat(item.size),
                        "m": filesizeformat(settings.ATTACHMENT_MAX_BYTES),
                    }
                )
        return files

    def clean(self):
        data = super().clean()
        # Formatted writing: the HTML cleaned like received HTML, the text part derived from it.
        data["body"], data["html"] = composed_bodies(data.get("body") or "", data.get("body_html"))
        if self.is_draft:
            return data
        if not (data.get("to") or data.get("cc")) and not self.errors.get("to") and not self.errors.get("cc"):
            self.add_error("to", _("Indiquez au moins un destinataire."))
        if len(data.get("to") or []) + len(data.get("cc") or []) > MAX_RECIPIENTS:
            self.add_error("to", _("Au plus %(n)d destinataires par message.") % {"n": MAX_RECIPIENTS})
        return data


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Rechercher"), required=False, max_length=200)
    unread = forms.BooleanField(label=_("Non lus"), required=False)
    attachments = forms.BooleanField(label=_("Avec pièces jointes"), required=False)
    sender = forms.CharField(label=_("Expéditeur"), required=False, max_length=254)
    since = forms.DateField(label=_("Du"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("Au"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("La date de début est après la date de fin."))
        return data

    def criteria(self) -> Criteria:
        data = self.cleaned_data
        return Criteria(
            text=data.get("q") or "",
            unread=bool(data.get("unread")),
            attachments=bool(data.get("attachments")),
            sender=(data.get("sender") or "").strip(),
            since=data.get("since"),
            until=data.get("until"),
        )
