"""Forms of the automation pages (issue 9): models, preview, convocations, campaign upload and
column mapping. They parse and check; the modules `authoring`, `convocations` and `campaigns`
act."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from automation import fields
from automation.authoring import reminder_days_error, text_errors
from automation.models import MessageModel
from mailboxes.identifiers import ins_error, normalise_ins

COMMON_FIELDS = [name for name, f in fields.FIELDS.items() if f.source == "model"]


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


def _box_choices(boxes):
    return [(b.pk, f"{b.display_name} <{b.address}>" if b.display_name else b.address) for b in boxes]


class MessageModelForm(forms.Form):
    mailbox = forms.TypedChoiceField(label=_("BAL d'envoi"), coerce=int)
    service = forms.CharField(label=_("Service"), max_length=120)
    name = forms.CharField(label=_("Nom du modèle"), max_length=120)
    kind = forms.ChoiceField(label=_("Type"), choices=MessageModel.Kind.choices)
    is_appointment = forms.BooleanField(
        label=_("Convocation : joindre une invitation agenda (.ics) et programmer des rappels"), required=False
    )
    reminder_days = forms.CharField(
        label=_("Rappels (jours avant le rendez-vous)"),
        required=False,
        help_text=_("Par exemple « 7, 1 » : un rappel à J-7 et un à J-1, à l'heure des rappels (heure de Paris)."),
    )
    subject = forms.CharField(label=_("Objet"), max_length=900)
    body = forms.CharField(label=_("Texte"), widget=forms.Textarea(attrs={"rows": 18}))
    attachments = MultipleFileField(label=_("Ajouter des pièces jointes permanentes"), required=False)
    remove_attachments = forms.TypedMultipleChoiceField(
        label=_("Retirer"), required=False, coerce=int, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, boxes, model=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.boxes = {b.pk: b for b in boxes}
        self.fields["mailbox"].choices = _box_choices(boxes)
        for name in COMMON_FIELDS:
            self.fields[f"default_{name}"] = forms.CharField(
                label=fields.FIELDS[name].label, required=False, widget=forms.Textarea(attrs={"rows": 2})
            )
        current = model.current if model is not None else None
        self.fields["remove_attachments"].choices = (
            [(a.pk, a.filename) for a in current.attachments.all()] if current else []
        )
        if model is not None:
            self.fields["mailbox"].disabled = True

    def common_fields(self):
        return [self[f"default_{name}"] for name in COMMON_FIELDS]

    def clean_mailbox(self):
        return self.boxes[self.cleaned_data["mailbox"]]

    def clean_reminder_days(self):
        text = (self.cleaned_data.get("reminder_days") or "").replace(";", ",")
        try:
            days = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            days = None
        error = reminder_days_error(days)
        if error:
            raise forms.ValidationError(error)
        return days

    def clean_attachments(self):
        files = self.cleaned_data.get("attachments") or []
        for item in files:
            if item.size > settings.ATTACHMENT_MAX_BYTES:
                raise forms.ValidationError(
                    _("« %(f)s » dépasse %(m)s.") % {"f": item.name, "m": filesizeformat(settings.ATTACHMENT_MAX_BYTES)}
                )
        return files

    def clean(self):
        data = super().clean()
        errors = text_errors(data.get("subject", ""), data.get("body", ""))
        if errors:
            self.add_error("body", errors)
        if data.get("is_appointment"):
            missing = [n for n in fields.APPOINTMENT_REQUIRED if n not in fields.fields_in(data.get("body", ""))]
            if missing:
                self.add_error(
                    "body", _("Une convocation indique la date et l'heure : ajoutez {{ date_rdv }} et {{ heure_rdv }}.")
                )
        data["defaults"] = {n: data.get(f"default_{n}", "").strip() for n in COMMON_FIELDS}
        data["defaults"] = {k: v for k, v in data["defaults"].items() if v}
        return data


class InsField(forms.CharField):
    """A matricule INS typed by hand: spaces allowed, key checked."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Matricule INS du patient"))
        kwargs.setdefault("max_length", 30)
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def clean(self, value):
        value = normalise_ins(super().clean(value) or "")
        error = ins_error(value) if value else None
        if error:
            raise forms.ValidationError(error)
        return value


class AppointmentFields(forms.Form):
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    time = forms.TimeField(label=_("Heure"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))

    def starts_at(self):
        from automation.convocations import parse_appointment

        data = self.cleaned_data
        return parse_appointment(data["date"].strftime("%d/%m/%Y"), data["time"].strftime("%H:%M"))


class ConvocationForm(AppointmentFields):
    model = forms.TypedChoiceField(label=_("Modèle"), coerce=int)
    ins = InsField()
    duration = forms.IntegerField(label=_("Durée (minutes)"), min_value=5, max_value=24 * 60, initial=30)
    lieu = forms.CharField(label=fields.FIELDS["lieu"].label, required=False, max_length=300)
    motif = forms.CharField(label=fields.FIELDS["motif"].label, required=False, max_length=300)
    titre_professionnel = forms.CharField(label=fields.FIELDS["titre_professionnel"].label, required=False)
    nom_professionnel = forms.CharField(label=fields.FIELDS["nom_professionnel"].label, required=False)

    field_order = ["model", "ins", "date", "time", "duration", "lieu", "motif"]

    def __init__(self, *args, models, **kwargs):
        super().__init__(*args, **kwargs)
        self.models = {m.pk: m for m in models}
        self.fields["model"].choices = [(m.pk, f"{m.service} — {m.name} ({m.mailbox.address})") for m in models]

    def clean_model(self):
        return self.models[self.cleaned_data["model"]]

    def values(self) -> dict:
        names = ("lieu", "motif", "titre_professionnel", "nom_professionnel")
        return {n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n)}


class RescheduleForm(AppointmentFields):
    pass


class PreviewForm(forms.Form):
    """Sample values for the preview of a model (a fictional patient: an INS typed here never
    reveals a name, issue 15 item 8)."""

    date_rdv = forms.CharField(label=fields.FIELDS["date_rdv"].label, required=False, initial="lundi 14 juin 2027")
    heure_rdv = forms.CharField(label=fields.FIELDS["heure_rdv"].label, required=False, initial="9 h 30")
    lieu = forms.CharField(label=fields.FIELDS["lieu"].label, required=False, initial="Bâtiment A, 1er étage")
    motif = forms.CharField(label=fields.FIELDS["motif"].label, required=False, initial="consultation")
    titre_professionnel = forms.CharField(label=fields.FIELDS["titre_professionnel"].label, required=False)
    nom_professionnel = forms.CharField(label=fields.FIELDS["nom_professionnel"].label, required=False)


class UploadForm(forms.Form):
    model = forms.TypedChoiceField(label=_("Modèle"), coerce=int)
    file = forms.FileField(
        label=_("Liste des patients (CSV)"),
        help_text=_(
            "Export du logiciel de l'établissement : UTF-8 ou Windows-1252, colonnes séparées par « ; » ou « , »."
        ),
    )

    def __init__(self, *args, models, **kwargs):
        super().__init__(*args, **kwargs)
        self.models = {m.pk: m for m in models}
        self.fields["model"].choices = [(m.pk, f"{m.service} — {m.name} ({m.mailbox.address})") for m in models]

    def clean_model(self):
        return self.models[self.cleaned_data["model"]]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.AUTOMATION_CSV_MAX_BYTES:
            raise forms.ValidationError(
                _("Le fichier dépasse %(m)s.") % {"m": filesizeformat(settings.AUTOMATION_CSV_MAX_BYTES)}
            )
        return upload


class MappingForm(forms.Form):
    def __init__(self, *args, campaign, names, required, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", _("— aucune colonne —"))] + [(h, h) for h in campaign.headers]
        for name in names:
            label = _("Matricule INS") if name == "ins" else fields.FIELDS[name].label
            self.fields[name] = forms.ChoiceField(
                label=label,
                choices=choices,
                required=name in required,
                initial=campaign.mapping.get(name, ""),
            )
