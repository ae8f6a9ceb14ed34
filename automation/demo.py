"""The automation part of the demo (`manage.py seed_demo` calls `seed_automation_demo` by name):
the standard models on the applicative box of the admissions (service "Admissions") and on
`cardiologie@` (service "Cardiologie"), and one upcoming convocation for Paul so that his inbox
shows "Mes prochains rendez-vous". Idempotent."""

from __future__ import annotations

import datetime

from django.utils import timezone

from automation.models import Convocation, MessageModel
from automation.standard_models import install_standard_models
from mailboxes.models import Mailbox

AUTO = "envois_automatiques_noreply@ch-troispics.mssante.fr"
CARDIO = "cardiologie@ch-troispics.mssante.fr"
PAUL_INS = "158037511204568"


def seed_demo_automation() -> str:
    from automation.convocations import create_convocation
    from mailboxes.delivery import DeliveryRefused
    from patients.models import Patient

    created = 0
    for address, service in ((AUTO, "Admissions"), (CARDIO, "Cardiologie")):
        box = Mailbox.objects.filter(address=address).first()
        if box is not None:
            created += len(install_standard_models(box, service))
    model = MessageModel.objects.filter(mailbox__address=AUTO, kind=MessageModel.Kind.CONVOCATION).first()
    paul = Patient.objects.filter(ins=PAUL_INS).first()
    convoked = 0
    if model and paul and not Convocation.objects.filter(patient=paul, starts_at__gte=timezone.now()).exists():
        day = timezone.localdate() + datetime.timedelta(days=12)
        starts = timezone.make_aware(datetime.datetime.combine(day, datetime.time(9, 30)))
        values = {"lieu": "Hall B, accueil des admissions", "motif": "bilan pré-opératoire"}
        try:
            create_convocation(model=model, patient=paul, starts_at=starts, user=None, values=values, source="system")
            convoked = 1
        except DeliveryRefused:
            pass
    return f"modèles de message créés : {created} ; convocation de démonstration : {convoked}"
