"""Forms of the patient space: labels and errors in French."""

from django import forms
from django.conf import settings

from health_record.models import Document
from patients import policy


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "widget",
            # Django links the help text and the errors to the input (aria-describedby).
            MultipleFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png,.rtf,.tif,.tiff"}),
        )
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(item, initial) for item in data if item]
        return [super().clean(data, initial)] if data else []


class ComposeForm(forms.Form):
    to = forms.ChoiceField(
        label="Destinataire",
        required=False,
        error_messages={
            "required": "Choisissez à qui envoyer votre message dans la liste.",
            "invalid_choice": "Choisissez à qui envoyer votre message dans la liste.",
        },
    )
    subject = forms.CharField(
        label="Objet",
        max_length=200,
        required=False,
        error_messages={"required": "Indiquez en quelques mots l'objet de votre message (par exemple « Ordonnance »)."},
    )
    text = forms.CharField(
        label="Votre message",
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=20000,
        error_messages={"required": "Écrivez votre message avant de l'envoyer."},
    )
    include_profile = forms.BooleanField(label="Joindre mon profil médical (PDF)", required=False)
    documents = forms.MultipleChoiceField(
        label="Documents de mon dossier", required=False, widget=forms.CheckboxSelectMultiple
    )
    files = MultipleFileField(
        label="Fichiers de mon appareil",
        required=False,
    )

    def __init__(self, *args, recipients=None, documents=(), show_profile=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["files"].help_text = (
            "PDF, JPG, PNG, RTF ou TIFF uniquement, "
            f"{settings.ATTACHMENT_MAX_BYTES // 2**20} Mo au plus par fichier, "
            f"{policy.message_limit() // 2**20} Mo au plus en tout."
        )
        if recipients is None:
            del self.fields["to"]
            del self.fields["subject"]
        else:
            self.fields["to"].choices = recipients
            self.fields["to"].required = True
            self.fields["subject"].required = True
        self.fields["documents"].choices = [(str(d.pk), f"{d.title} ({d.date:%d/%m/%Y})") for d in documents]
        if not documents:
            del self.fields["documents"]
        if not show_profile:
            del self.fields["include_profile"]


class NotificationEmailForm(forms.Form):
    notification_email = forms.EmailField(
        label="Adresse e-mail personnelle pour les notifications",
        required=False,
        help_text=(
            "Nous vous y prévenons d'un nouveau message, sans jamais en donner le contenu. "
            "Laissez la case vide pour ne plus être prévenu par e-mail."
        ),
        error_messages={"invalid": "Cette adresse e-mail est incomplète ou mal écrite (exemple : nom@exemple.fr)."},
    )


class CloseSpaceForm(forms.Form):
    confirm = forms.BooleanField(
        label="Je comprends que les professionnels ne pourront plus m'écrire dans cette messagerie.",
        error_messages={"required": "Cochez la case pour confirmer la clôture."},
    )


class SaveDocumentForm(forms.Form):
    title = forms.CharField(
        label="Titre",
        max_length=200,
        error_messages={"required": "Donnez un titre au document (par exemple « Résultats de prise de sang »)."},
    )
    date = forms.DateField(label="Date du document", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    category = forms.ChoiceField(label="Catégorie")
    kind = forms.ChoiceField(label="Nature")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = Document.Category.choices
        self.fields["kind"].choices = Document.Kind.choices
