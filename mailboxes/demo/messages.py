"""Demo messages for `seed_demo`, sent through the one delivery path like any other message.

Idempotent: each demo message carries a fixed Message-ID and is not sent again when present.
"""

from django.utils import timezone
from weasyprint import HTML

from mailboxes.compose import build_message
from mailboxes.delivery import DeliveryRefused, send_message
from mailboxes.models import Mailbox, Message

PAUL = "158037511204568@patient.mssante.fr"
LEA = "265066912308795@patient.mssante.fr"
CARDIO = "cardiologie@ch-troispics.mssante.fr"
ALICE = "alice.martin@ch-troispics.mssante.fr"
HUGO = "hugo.bernard@ch-troispics.mssante.fr"
AUTO = "envois_automatiques_noreply@ch-troispics.mssante.fr"
PHARMACY = "officine@pharmacie-du-marche.mssante.fr"


def _pdf(title: str, lines: list[str]) -> bytes:
    body = "".join(f"<p>{line}</p>" for line in lines)
    return HTML(
        string=(
            "<html lang='fr'><head><style>@page { size: A4; margin: 2cm } "
            "body { font-family: 'DejaVu Sans'; font-size: 11pt }</style></head>"
            f"<body><h1>{title}</h1>{body}<p>CH des Trois Pics — 1 avenue des Trois Pics, 38000 Grenoble</p>"
            "</body></html>"
        )
    ).write_pdf()


DEMO = [
    {
        "id": "demo-convocation@ch-troispics.mssante.fr",
        "from": CARDIO,
        "to": [PAUL],
        "subject": "Votre rendez-vous en cardiologie le 3 décembre",
        "text": (
            "Bonjour Monsieur Lambert,\n\n"
            "Vous êtes attendu le mercredi 3 décembre à 9 h 30 au service de cardiologie (bâtiment B, 2e étage) "
            "pour une échographie cardiaque.\n\n"
            "Merci d'apporter votre carte Vitale, votre ordonnance et vos derniers comptes rendus. "
            "Vous pouvez nous envoyer votre profil médical en répondant à ce message.\n\n"
            "Le secrétariat de cardiologie — 04 76 00 00 10"
        ),
        "attachments": [
            ("convocation-cardiologie.pdf", "Convocation", ["Échographie cardiaque", "Mercredi 3 décembre, 9 h 30"])
        ],
        "mdn": True,
    },
    {
        "id": "demo-preadmission@ch-troispics.mssante.fr",
        "from": AUTO,
        "to": [LEA],
        "subject": "Préparation de votre admission du 8 décembre",
        "text": (
            "Madame Roux,\n\n"
            "Votre admission en chirurgie ambulatoire est prévue le lundi 8 décembre à 7 h 30.\n"
            "Avant votre venue : complétez votre profil médical, envoyez-nous vos résultats de prise de sang "
            "récents, et préparez votre pièce d'identité, votre carte Vitale et l'attestation de votre mutuelle.\n"
            "Le jour J : venez à jeun depuis minuit, sans bijoux ni maquillage.\n\n"
            "Après votre séjour vous recevrez ici votre compte rendu et un questionnaire de satisfaction.\n"
            "Une question ? Bureau des admissions : 04 76 00 00 20.\n\n"
            "CH des Trois Pics"
        ),
        "attachments": [],
        "mdn": False,
    },
    {
        "id": "demo-avis@ch-troispics.mssante.fr",
        "from": HUGO,
        "to": [ALICE],
        "subject": "Demande d'avis cardiologique avant intervention",
        "text": (
            "Chère consœur,\n\nPourriez-vous voir en consultation une patiente de 64 ans avant une "
            "cholécystectomie programmée ? ECG joint.\n\nBien confraternellement,\nDr Hugo Bernard"
        ),
        "attachments": [("ecg.pdf", "ECG de repos", ["Rythme sinusal, 72 battements par minute."])],
        "mdn": False,
    },
    {
        "id": "demo-secretariat@ch-troispics.mssante.fr",
        "from": ALICE,
        "to": [CARDIO],
        "subject": "Planning des consultations de décembre",
        "text": "Bonjour,\n\nVoici mes disponibilités de décembre pour les consultations.\n\nAlice Martin",
        "attachments": [],
        "mdn": False,
    },
]


def seed_demo_messages() -> int:
    """Send the demo messages not yet present; returns how many were sent."""
    sent = 0
    for item in DEMO:
        message_id = f"<{item['id']}>"
        if Message.objects.filter(message_id=message_id).exists():
            continue
        sender = Mailbox.objects.get(address=item["from"])
        attachments = [(name, "application/pdf", _pdf(title, lines)) for name, title, lines in item["attachments"]]
        raw = build_message(
            sender=sender,
            to=item["to"],
            subject=item["subject"],
            text=item["text"],
            attachments=attachments,
            request_mdn=item["mdn"],
            extra_headers={"Message-ID": message_id},
        )
        try:
            send_message(
                raw, envelope_from=sender.address, envelope_to=item["to"], source="system", sender_mailbox=sender
            )
        except DeliveryRefused:
            continue  # e.g. a demo patient's space closed: the demo still loads
        sent += 1
    Mailbox.objects.filter(address__in=[CARDIO, ALICE, HUGO, AUTO]).update(last_used_at=timezone.now())
    return sent
