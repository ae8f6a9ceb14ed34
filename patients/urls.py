from django.urls import path

from patients import views

app_name = "patients"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("echange/<int:entry_id>/", views.conversation, name="conversation"),
    path("message/<int:entry_id>/", views.message_detail, name="message"),
    path("message/<int:entry_id>/repondre", views.reply, name="reply"),
    path("ecrire", views.compose, name="compose"),
    path("piece-jointe/<int:attachment_id>/enregistrer", views.save_attachment, name="save_attachment"),
    path("parametres", views.settings_page, name="settings"),
    path("parametres/bloquer/<int:mailbox_id>", views.block, name="block"),
    path("parametres/bloquer-correspondant/<int:entry_id>", views.block_correspondent, name="block_correspondent"),
    path("parametres/debloquer/<int:block_id>", views.unblock, name="unblock"),
    path("parametres/cloturer", views.close_space, name="close_space"),
    path(
        "pro/echange/<int:mailbox_id>/<int:patient_id>/cloturer",
        views.pro_close_conversation,
        name="pro_close_conversation",
    ),
]
