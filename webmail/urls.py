from django.urls import path

from webmail import contacts_views, settings_views, views

app_name = "webmail"
urlpatterns = [
    path("", views.home, name="home"),
    path("aide/", views.shortcuts_help, name="help"),
    path("bal/<int:mailbox_id>/", views.mailbox_home, name="mailbox"),
    path("bal/<int:mailbox_id>/dossier/<int:folder_id>/", views.folder, name="folder"),
    path("bal/<int:mailbox_id>/dossier/<int:folder_id>/modifier/", views.folder_edit, name="folder_edit"),
    path("bal/<int:mailbox_id>/dossier/<int:folder_id>/nouveautes/", views.poll, name="poll"),
    path("bal/<int:mailbox_id>/dossiers/", views.folder_create, name="folder_create"),
    path("bal/<int:mailbox_id>/corbeille/vider/", views.empty_trash, name="empty_trash"),
    path("bal/<int:mailbox_id>/recherche/", views.search, name="search"),
    path("bal/<int:mailbox_id>/selection/", views.bulk_action, name="bulk"),
    path("bal/<int:mailbox_id>/signature/", views.signature, name="signature"),
    path("bal/<int:mailbox_id>/absence/", settings_views.absence_settings, name="absence"),
    path("bal/<int:mailbox_id>/transfert/", settings_views.forwarding_settings, name="forwarding"),
    path("bal/<int:mailbox_id>/regles/", settings_views.rules_settings, name="rules"),
    path("bal/<int:mailbox_id>/regles/<int:rule_id>/", settings_views.rule_action, name="rule_action"),
    path("message/<int:entry_id>/", views.message, name="message"),
    path("message/<int:entry_id>/corps/", views.message_body, name="message_body"),
    path("message/<int:entry_id>/entetes/", views.message_headers, name="message_headers"),
    path("message/<int:entry_id>/imprimer/", views.message_print, name="message_print"),
    path("message/<int:entry_id>/suivi/", views.message_timeline, name="message_timeline"),
    path("message/<int:entry_id>/action/", views.message_action, name="message_action"),
    path("message/<int:entry_id>/supprimer/", views.message_delete, name="message_delete"),
    path("ecrire/", views.compose, name="compose"),
    path("ecrire/brouillon/", views.draft_save, name="draft_save"),
    path("ecrire/destinataires/", views.recipients, name="recipients"),
    path("contacts/", contacts_views.address_books, name="contacts"),
    path("contacts/<int:contact_id>/", contacts_views.contact_edit, name="contact_edit"),
    path("contacts/<int:contact_id>/retirer/", contacts_views.contact_remove, name="contact_remove"),
]
