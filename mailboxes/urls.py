from django.urls import path

from mailboxes import views

app_name = "mailboxes"
urlpatterns = [
    path("message/<int:entry_id>/eml", views.message_eml, name="message_eml"),
    path("piece-jointe/<int:attachment_id>", views.attachment_download, name="attachment_download"),
]
