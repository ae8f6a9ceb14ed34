"""The patient's pages that the layout tests visit (tests/e2e/test_patient_layout.py at 375 and
1366 px, tests/e2e/test_patient_elderly_layout.py at 320 px and 200 % text)."""


def patient_page_urls(cast, entry, reply_to, attachment, document) -> list[str]:
    """Every patient page once: the inbox, the exchange and message of `entry`, the reply page
    of `reply_to` (with its exchange when it is another one), the composer, saving `attachment`
    to the record, the settings and their confirmations, and the record with `document`."""
    replied = [] if reply_to.pk == entry.pk else [f"/patient/echange/{reply_to.pk}/"]
    return [
        "/patient/",
        f"/patient/echange/{entry.pk}/",
        f"/patient/message/{entry.pk}/",
        *replied,
        f"/patient/message/{reply_to.pk}/repondre",
        "/patient/ecrire",
        f"/patient/piece-jointe/{attachment.pk}/enregistrer",
        "/patient/parametres",
        f"/patient/parametres/bloquer/{cast.cardio.pk}",
        "/patient/parametres/cloturer",
        "/dossier/",
        "/dossier/mesures/",
        "/dossier/documents/",
        "/dossier/documents/ajouter/",
        f"/dossier/documents/{document.pk}/",
        f"/dossier/documents/{document.pk}/supprimer/",
    ]
