"""The patient's record, mounted at /dossier/ (RULES.md §3)."""

from django.urls import path

from health_record import views

app_name = "health_record"
urlpatterns = [
    path("", views.profile, name="profile"),
    path("profil/<slug:section>/", views.edit_section, name="edit_section"),
    path("profil.pdf", views.profile_pdf_download, name="profile_pdf"),
    path("mesures/", views.measures, name="measures"),
    path("mesures/<int:measure_id>/supprimer/", views.delete_measure, name="delete_measure"),
    path("documents/", views.documents, name="documents"),
    path("documents/ajouter/", views.upload_document, name="upload_document"),
    path("documents/<int:document_id>/", views.document, name="document"),
    path("documents/<int:document_id>/apercu/", views.document_inline, name="document_inline"),
    path("documents/<int:document_id>/telecharger/", views.document_download, name="document_download"),
    path("documents/<int:document_id>/supprimer/", views.document_delete, name="document_delete"),
]
