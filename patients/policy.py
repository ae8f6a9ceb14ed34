"""The MSS-C rules (RULES.md §3). Placeholder until the patient-space work lands: delivers everything."""

from mailboxes.patient_domain import DeliverEverything


class PatientPolicy(DeliverEverything):
    pass
