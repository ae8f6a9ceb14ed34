"""The models shipped with the product (RULES.md §4 "how structures use it"), written for this
product in French: pre-admission (every field §4 lists), convocation, welcome and practical
information, preparation instructions, document request, satisfaction survey.

`install_standard_models(mailbox, service)` creates those missing for a box and service (by
name): `manage.py install_message_models` and the demo call it; a structure then edits them
(each edit is a new version).
"""

from __future__ import annotations

from automation.models import MessageModel

ADMINISTRATIVE_PIECES = (
    "- une pièce d'identité en cours de validité ;\n"
    "- votre carte Vitale ou votre attestation de droits à l'Assurance maladie ;\n"
    "- votre carte ou attestation de complémentaire santé (mutuelle) ;\n"
    "- le courrier de votre médecin traitant, si vous en avez un."
)

PRE_ADMISSION_BODY = """Bonjour {{ civilite }} {{ nom_usage }},

Votre venue dans le service {{ service }} de {{ structure }} est prévue le {{ date_rdv }} à {{ heure_rdv }}, \
avec {{ titre_professionnel }} {{ nom_professionnel }}.
Motif : {{ motif }}.
Adresse : {{ adresse_structure }}[[ — {{ lieu }}]].

Ce message s'adresse à {{ prenom }} {{ nom_usage }} (nom de naissance : {{ nom_naissance }}). \
S'il ne vous est pas destiné, prévenez-nous au {{ telephone_aide }}.

Avant votre venue, depuis votre espace Mon espace santé :
1. complétez votre profil médical (antécédents, traitements en cours, allergies) ;
2. ajoutez à votre dossier les documents qui y manquent ;
3. répondez à ce message en y joignant la synthèse de votre profil médical et vos comptes rendus \
récents utiles à cette venue : {{ documents_a_renvoyer }}.

Le jour de votre venue, munissez-vous de :
{{ pieces_administratives }}

[[Vous pouvez aussi préparer votre venue sur notre portail patient : {{ lien_portail }}

]][[Consignes particulières : {{ consignes }}

]]Après votre venue : {{ suite_visite }}

Une question ? Appelez le {{ telephone_aide }}.
[[
{{ confirmation }}
]]
{{ signature }}
"""

CONVOCATION_BODY = """Bonjour {{ civilite }} {{ nom_usage }},

Vous êtes attendu(e) le {{ date_rdv }} à {{ heure_rdv }} dans le service {{ service }} de \
{{ structure }}[[, {{ lieu }}]].
[[Motif : {{ motif }}.
]][[Vous serez reçu(e) par {{ titre_professionnel }} {{ nom_professionnel }}.
]]
Adresse : {{ adresse_structure }}.
L'invitation jointe ajoute ce rendez-vous à l'agenda de votre téléphone ou de votre ordinateur.

[[Consignes : {{ consignes }}

]]Si vous ne pouvez pas venir, prévenez-nous au {{ telephone_aide }} : le créneau sera proposé \
à un autre patient.

{{ signature }}
"""

WELCOME_BODY = """Bonjour {{ civilite }} {{ nom_usage }},

Le service {{ service }} de {{ structure }} vous écrit désormais par Mon espace santé : vous y \
recevrez nos convocations, consignes et documents, et vous pourrez nous répondre ici.

Informations pratiques :
- adresse : {{ adresse_structure }} ;
- accueil téléphonique : {{ telephone_aide }}.
[[- portail patient : {{ lien_portail }}.
]]
{{ signature }}
"""

PREPARATION_BODY = """Bonjour {{ civilite }} {{ nom_usage }},

Pour que votre examen ({{ motif }}) du {{ date_rdv }} se déroule bien, voici comment vous y \
préparer :

{{ consignes }}

[[La fiche de préparation jointe reprend ces consignes.
]]Si vous avez un doute, ou si vous ne pouvez pas suivre ces consignes, appelez-nous au \
{{ telephone_aide }} avant le jour de l'examen.

{{ signature }}
"""

DOCUMENT_REQUEST_BODY = """Bonjour {{ civilite }} {{ nom_usage }},

Avant votre venue du {{ date_rdv }} dans le service {{ service }}, nous avons besoin des \
documents suivants :

{{ documents_a_renvoyer }}

Répondez simplement à ce message en y joignant ces documents, depuis votre dossier Mon espace \
santé ou depuis votre appareil (PDF, JPG ou PNG).

Une question ? Appelez le {{ telephone_aide }}.

{{ signature }}
"""

SATISFACTION_BODY = """Bonjour {{ civilite }} {{ nom_usage }},

Vous avez été pris(e) en charge récemment dans le service {{ service }} de {{ structure }}. \
Votre avis nous aide à améliorer l'accueil et les soins : répondre au questionnaire prend \
environ cinq minutes.

{{ lien_questionnaire }}

Vos réponses sont anonymes. Ce message ne demande pas de réponse.

{{ signature }}
"""

STANDARD_MODELS = [
    {
        "kind": MessageModel.Kind.PRE_ADMISSION,
        "name": "Pré-admission",
        "is_appointment": True,
        "reminder_days": [7, 1],
        "subject": "Préparer votre venue du {{ date_rdv }} — {{ service }}",
        "body": PRE_ADMISSION_BODY,
        "defaults": {
            "documents_a_renvoyer": "ordonnances en cours, résultats de biologie et comptes rendus d'imagerie "
            "de moins de six mois",
            "pieces_administratives": ADMINISTRATIVE_PIECES,
            "suite_visite": "vous recevrez dans cette messagerie les documents de votre venue (compte rendu, "
            "ordonnances), puis un court questionnaire de satisfaction",
            "confirmation": "Merci de confirmer votre venue en répondant simplement « OUI » à ce message.",
        },
    },
    {
        "kind": MessageModel.Kind.CONVOCATION,
        "name": "Convocation",
        "is_appointment": True,
        "reminder_days": [7, 1],
        "subject": "Votre rendez-vous du {{ date_rdv }} à {{ heure_rdv }} — {{ service }}",
        "body": CONVOCATION_BODY,
        "defaults": {},
    },
    {
        "kind": MessageModel.Kind.WELCOME,
        "name": "Accueil et informations pratiques",
        "is_appointment": False,
        "reminder_days": [],
        "subject": "Bienvenue — {{ service }}, {{ structure }}",
        "body": WELCOME_BODY,
        "defaults": {},
    },
    {
        "kind": MessageModel.Kind.PREPARATION,
        "name": "Consignes de préparation",
        "is_appointment": False,
        "reminder_days": [],
        "subject": "Préparer votre examen du {{ date_rdv }}",
        "body": PREPARATION_BODY,
        "defaults": {
            "consignes": "- venez à jeun (ni boisson ni aliment) depuis minuit ;\n"
            "- retirez bijoux et piercings avant de venir ;\n"
            "- apportez la liste de vos médicaments et, si vous êtes diabétique, votre lecteur de glycémie."
        },
    },
    {
        "kind": MessageModel.Kind.DOCUMENT_REQUEST,
        "name": "Demande de documents",
        "is_appointment": False,
        "reminder_days": [],
        "subject": "Documents à nous transmettre avant le {{ date_rdv }}",
        "body": DOCUMENT_REQUEST_BODY,
        "defaults": {"documents_a_renvoyer": "- votre dernier bilan sanguin (moins de 8 jours avant la venue)."},
    },
    {
        "kind": MessageModel.Kind.SATISFACTION,
        "name": "Questionnaire de satisfaction",
        "is_appointment": False,
        "reminder_days": [],
        "subject": "Votre avis sur votre prise en charge — {{ service }}",
        "body": SATISFACTION_BODY,
        "defaults": {},
    },
]


def install_standard_models(mailbox, service: str, user=None) -> list[MessageModel]:
    """The standard models for `mailbox` and `service`; those missing (by name) are created
    with their first version. Returns the models created."""
    from automation.authoring import create_model

    created = []
    for spec in STANDARD_MODELS:
        if MessageModel.objects.filter(mailbox=mailbox, service=service, name=spec["name"]).exists():
            continue
        created.append(
            create_model(
                mailbox=mailbox,
                service=service,
                user=user,
                **spec,
            )
        )
    return created
