"""Forms of a box's settings pages: absence message, forwarding, sorting rules (RULES.md §6).
They check the input and say what is wrong in French; the rules themselves live in
`mailboxes.absence`, `mailboxes.forwarding` and `mailboxes.box_rules`."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from mailboxes.box_rules import move_targets
from mailboxes.forwarding import forward_target_error
from mailboxes.models import BoxRule

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AbsenceForm(forms.Form):
    enabled = forms.BooleanField(label=_("Activer le message d'absence"), required=False)
    starts_on = forms.DateField(label=_("Du"), required=False, widget=DATE)
    ends_on = forms.DateField(label=_("Au (inclus)"), required=False, widget=DATE)
    subject = forms.CharField(
        label=_("Objet de la réponse"),
        required=False,
        max_length=200,
        help_text=_("Laissé vide : « Réponse automatique : » suivi de l'objet du message reçu."),
    )
    text = forms.CharField(
        label=_("Texte de la réponse"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("Par exemple : vos dates d'absence et qui contacter en cas d'urgence."),
    )
    reply_to_patients = forms.BooleanField(
        label=_("Répondre aussi aux patients (Mon espace santé)"),
        required=False,
        help_text=_("Sans cette case, les patients qui vous écrivent ne reçoivent pas de réponse automatique."),
    )

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_on"), data.get("ends_on")
        if starts and ends and ends < starts:
            self.add_error("ends_on", _("La date de fin précède la date de début."))
        if data.get("enabled") and not (data.get("text") or "").strip():
            self.add_error("text", _("Écrivez le texte que recevront vos correspondants."))
        return data


class ForwardingForm(forms.Form):
    enabled = forms.BooleanField(label=_("Transférer automatiquement les messages reçus"), required=False)
    address = forms.CharField(
        label=_("Adresse MSSanté de destination"),
        required=False,
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=_("Une autre boîte de l'espace de confiance MSSanté (adresse en …mssante.fr)."),
    )
    keep_copy = forms.BooleanField(
        label=_("Garder une copie dans cette boîte"),
        required=False,
        help_text=_("Sans copie, le message transféré est placé dans la corbeille de cette boîte."),
    )

    def __init__(self, *args, mailbox, **kwargs):
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def clean(self):
        data = super().clean()
        address = (data.get("address") or "").strip()
        if data.get("enabled") and not address:
            self.add_error("address", _("Indiquez l'adresse MSSanté vers laquelle transférer."))
        elif address:
            error = forward_target_error(self.mailbox, address)
            if error:
                self.add_error("address", error)
        return data


class RuleForm(forms.Form):
    field = forms.ChoiceField(label=_("Si"), choices=BoxRule.Field.choices)
    contains = forms.CharField(label=_("contient"), max_length=200)
    move_to = forms.ModelChoiceField(
        label=_("Déplacer vers"), required=False, queryset=None, empty_label=_("(ne pas déplacer)")
    )
    flag = forms.BooleanField(label=_("Suivre (★)"), required=False)
    mark_read = forms.BooleanField(label=_("Marquer comme lu"), required=False)

    def __init__(self, *args, mailbox, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["move_to"].queryset = move_targets(mailbox)

    def clean(self):
        data = super().clean()
        if not self.errors and not (data.get("move_to") or data.get("flag") or data.get("mark_read")):
            raise forms.ValidationError(
                _("Choisissez au moins une action : déplacer vers un dossier, suivre ou marquer comme lu.")
            )
        return data
