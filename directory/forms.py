from django import forms
from django.utils.translation import gettext_lazy as _

from directory.models import Entry
from directory.search import Criteria


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Rechercher dans l'annuaire"), max_length=200)
    kind = forms.ChoiceField(label=_("Type de BAL"), required=False)
    profession = forms.ChoiceField(label=_("Profession"), required=False)
    department = forms.ChoiceField(label=_("Département"), required=False)

    def __init__(self, *args, choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        choices = choices or {"professions": [], "departments": []}
        self.fields["kind"].choices = [("", _("Tous"))] + [(k.value, f"{k.value} — {k.label}") for k in Entry.Kind]
        self.fields["profession"].choices = [("", _("Toutes"))] + choices["professions"]
        self.fields["department"].choices = [("", _("Tous"))] + choices["departments"]

    def clean_q(self):
        value = self.cleaned_data["q"].strip()
        if len(Criteria(text=value).folded) < 2:
            raise forms.ValidationError(_("Tapez au moins deux lettres ou chiffres."))
        return value

    def criteria(self) -> Criteria:
        data = self.cleaned_data
        return Criteria(
            text=data["q"],
            kind=data.get("kind") or "",
            profession=data.get("profession") or "",
            department=data.get("department") or "",
        )


class PreferencesForm(forms.Form):
    dematerialisation = forms.BooleanField(
        label=_("Je ne souhaite plus recevoir par courrier papier ce que je reçois déjà par messagerie sécurisée."),
        help_text=_(
            "Votre choix s'affiche à côté de vos boîtes dans l'annuaire : les secrétariats qui vous écrivent "
            "savent ainsi qu'il est inutile de doubler leurs envois par la poste."
        ),
        required=False,
    )
