"""Forms of the patient's record, in plain French (RULES.md §3): the profile sections, the
measures with their plausibility checks, and the document upload."""

import datetime
import re

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from health_record.models import (
    Allergy,
    Contact,
    Document,
    HistoryItem,
    Measure,
    Profile,
    Treatment,
    Vaccination,
    format_number,
)

PHONE_RE = re.compile(r"^\+?[0-9 .\-()]{6,25}$")
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _today() -> datetime.date:
    return timezone.localdate()


def _not_in_future(value, what="Cette date"):
    if value and value > _today():
        raise ValidationError(f"{what} ne peut pas être dans le futur.")
    if value and value.year < 1900:
        raise ValidationError(f"{what} est trop ancienne : vérifiez l'année.")
    return value


def _phone(value: str) -> str:
    value = (value or "").strip()
    if value and (not PHONE_RE.match(value) or len(re.sub(r"\D", "", value)) < 6):
        raise ValidationError("Numéro de téléphone invalide : utilisez des chiffres, par exemple 06 12 34 56 78.")
    return value


class PatientModelForm(forms.ModelForm):
    """A form a patient fills: a select never shows Django's "---------" (issue 16 item 10); its
    empty choice says what to do ("Choisir…") or, when the field is optional, "Non renseigné"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.ModelChoiceField):
                if field.empty_label is not None and "---" in str(field.empty_label):
                    field.empty_label = "Choisir…" if field.required else "Non renseigné"
            elif isinstance(field, forms.ChoiceField):
                field.choices = [
                    (
                        value,
                        ("Choisir…" if field.required else "Non renseigné")
                        if value == "" and "---" in str(label)
                        else label,
                    )
                    for value, label in field.choices
                ]


class HistoryItemForm(PatientModelForm):
    class Meta:
        model = HistoryItem
        fields = ["kind", "description", "year", "note"]
        help_texts = {"year": "Facultatif, par exemple 2015."}

    def clean_year(self):
        year = self.cleaned_data.get("year")
        if year is not None and not (1900 <= year <= _today().year):
            raise ValidationError(f"L'année doit être comprise entre 1900 et {_today().year}.")
        return year


class TreatmentForm(PatientModelForm):
    class Meta:
        model = Treatment
        fields = ["drug", "dose", "since"]
        widgets = {"since": DATE_INPUT}
        help_texts = {"dose": "Par exemple : 1 comprimé matin et soir."}

    def clean_since(self):
        return _not_in_future(self.cleaned_data.get("since"), "La date de début")


class AllergyForm(PatientModelForm):
    class Meta:
        model = Allergy
        fields = ["kind", "substance", "reaction"]


class ContactForm(PatientModelForm):
    class Meta:
        model = Contact
        fields = ["name", "relation", "phone", "is_trusted_person"]
        widgets = {"phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"})}
        help_texts = {
            "is_trusted_person": "La personne qui peut vous accompagner et être consultée si vous ne pouvez plus vous exprimer."
        }

    def clean_phone(self):
        return _phone(self.cleaned_data.get("phone"))


class VaccinationForm(PatientModelForm):
    class Meta:
        model = Vaccination
        fields = ["vaccine", "date", "note"]
        widgets = {"date": DATE_INPUT}

    def clean_date(self):
        return _not_in_future(self.cleaned_data.get("date"), "La date de vaccination")


class BaseRowsFormSet(forms.BaseInlineFormSet):
    """Rows of a profile section; blank extra rows are ignored."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Supprimer cette ligne"


class ContactFormSet(BaseRowsFormSet):
    def clean(self):
        super().clean()
        trusted = [
            f
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("is_trusted_person")
        ]
        if len(trusted) > 1:
            raise ValidationError("Vous ne pouvez désigner qu'une seule personne de confiance.")


def rows_formset(model, form, formset=BaseRowsFormSet):
    return forms.inlineformset_factory(Profile, model, form=form, formset=formset, extra=2, can_delete=True)


HistoryFormSet = rows_formset(HistoryItem, HistoryItemForm)
TreatmentFormSet = rows_formset(Treatment, TreatmentForm)
AllergyFormSet = rows_formset(Allergy, AllergyForm)
ContactsFormSet = rows_formset(Contact, ContactForm, ContactFormSet)
VaccinationFormSet = rows_formset(Vaccination, VaccinationForm)


class LifestyleForm(PatientModelForm):
    class Meta:
        model = Profile
        fields = ["tobacco", "tobacco_detail", "alcohol", "alcohol_detail", "physical_activity", "diet"]
        labels = {"tobacco_detail": "Précisions (depuis quand, quantité)", "alcohol_detail": "Précisions"}


class DirectivesForm(PatientModelForm):
    class Meta:
        model = Profile
        fields = ["advance_directives", "advance_directives_document"]
        labels = {
            "advance_directives": "Vos directives anticipées",
            "advance_directives_document": "Ou un document de votre dossier",
        }
        help_texts = {
            "advance_directives": "Ce que vous souhaitez, ou ne souhaitez pas, pour votre fin de vie.",
            "advance_directives_document": "Ajoutez d'abord le document dans « Mes documents ».",
        }
        widgets = {"advance_directives": forms.Textarea(attrs={"rows": 5})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["advance_directives_document"]
        field.queryset = Document.objects.filter(patient=self.instance.patient)
        field.empty_label = "Aucun document"
        field.label_from_instance = lambda d: f"{d.title} ({d.date:%d/%m/%Y})"


class AdministrativeForm(PatientModelForm):
    class Meta:
        model = Profile
        fields = ["gp_name", "gp_phone", "insurance", "complementary_insurance", "complementary_number", "blood_group"]
        widgets = {"gp_phone": forms.TextInput(attrs={"type": "tel"})}
        help_texts = {"insurance": "Par exemple : CPAM de l'Isère, MSA…"}

    def clean_gp_phone(self):
        return _phone(self.cleaned_data.get("gp_phone"))


class MeasureForm(PatientModelForm):
    class Meta:
        model = Measure
        fields = ["kind", "measured_on", "value", "value2"]
        labels = {"value": "Valeur", "value2": "Tension diastolique (mmHg)"}
        help_texts = {
            "value": "Poids en kg, taille en cm, tension systolique en mmHg, glycémie en g/L, "
            "fréquence cardiaque en battements par minute.",
            "value2": "Seulement pour la tension : le second chiffre (par exemple 80 pour 12/8).",
        }
        widgets = {"measured_on": DATE_INPUT}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("value", "value2"):
            # Accept "72,5" as well as "72.5": a French keyboard types a comma.
            field = self.fields[name]
            field.localize = True
            field.widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
            field.widget.is_localized = True
        self.fields["kind"].choices = [("", "Choisissez une mesure"), *Measure.Kind.choices]
        if not self.is_bound and not self.initial.get("measured_on"):
            self.initial["measured_on"] = _today()

    def clean_measured_on(self):
        return _not_in_future(self.cleaned_data.get("measured_on"), "La date de la mesure")

    def clean(self):
        data = super().clean()
        kind, value, value2 = data.get("kind"), data.get("value"), data.get("value2")
        if not kind or value is None:
            return data
        low, high = Measure.RANGES[kind]
        unit = Measure.UNITS[kind]
        label = Measure.Kind(kind).label
        if not (low <= value <= high):
            hint = ""
            if kind == Measure.Kind.GLUCOSE and value > high:
                hint = " La glycémie s'écrit en g/L (par exemple 1,05) et non en mg/dL."
            if kind == Measure.Kind.BLOOD_PRESSURE and value < low and value < 30:
                hint = " La tension s'écrit en mmHg (par exemple 120 et non 12)."
            self.add_error(
                "value",
                f"Une valeur de {format_number(value)} {unit} n'est pas plausible pour la mesure « {label} » : "
                f"elle doit être comprise entre {format_number(low)} et {format_number(high)} {unit}.{hint}",
            )
        if kind == Measure.Kind.BLOOD_PRESSURE:
            d_low, d_high = Measure.DIASTOLIC_RANGE
            if value2 is None:
                self.add_error("value2", "Indiquez aussi la tension diastolique (le second chiffre).")
            elif not (d_low <= value2 <= d_high):
                self.add_error(
                    "value2",
                    f"Une tension diastolique de {format_number(value2)} mmHg n'est pas plausible : elle doit être "
                    f"comprise entre {format_number(d_low)} et {format_number(d_high)} mmHg.",
                )
            elif value2 >= value:
                self.add_error("value2", "La tension diastolique doit être inférieure à la tension systolique.")
        elif value2 is not None:
            data["value2"] = None
        return data


class DocumentUploadForm(forms.Form):
    file = forms.FileField(
        label="Fichier",
        help_text="PDF, JPG, PNG, RTF, TIFF ou TXT, 5 Mo au plus.",
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png,.rtf,.tif,.tiff,.txt"}),
    )
    title = forms.CharField(label="Titre", max_length=200, help_text="Par exemple : Compte rendu de cardiologie.")
    date = forms.DateField(label="Date du document", widget=DATE_INPUT)
    kind = forms.ChoiceField(label="Nature", choices=Document.Kind.choices, initial=Document.Kind.HEALTH)
    category = forms.ChoiceField(
        label="Catégorie",
        choices=[
            ("Documents de santé", [(c.value, c.label) for c in Document.HEALTH_CATEGORIES if c != "other"]),
            (
                "Documents administratifs",
                [(c.value, c.label) for c in Document.ADMINISTRATIVE_CATEGORIES if c != "other"],
            ),
            ("Autre", [(Document.Category.OTHER.value, Document.Category.OTHER.label)]),
        ],
    )

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        limit = settings.HEALTH_DOCUMENT_MAX_BYTES
        if upload is not None and upload.size > limit:
            # Refused before its bytes are read into memory; the content check comes after.
            raise ValidationError(
                f"Le fichier « {upload.name} » pèse {filesizeformat(upload.size)} : "
                f"la limite est de {filesizeformat(limit)}."
            )
        return upload

    def clean_date(self):
        return _not_in_future(self.cleaned_data.get("date"), "La date du document")

    def clean(self):
        data = super().clean()
        kind, category = data.get("kind"), data.get("category")
        if kind and category:
            allowed = Document.HEALTH_CATEGORIES if kind == Document.Kind.HEALTH else Document.ADMINISTRATIVE_CATEGORIES
            if category not in allowed:
                self.add_error(
                    "category",
                    f"La catégorie « {Document.Category(category).label} » ne correspond pas à un "
                    f"{Document.Kind(kind).label}.",
                )
        return data
