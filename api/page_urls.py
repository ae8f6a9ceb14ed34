from django.urls import path

from api import pages

app_name = "api_pages"
urlpatterns = [
    path("bal/<int:mailbox_id>/", pages.return_queue, name="return_queue"),
    path("bal/<int:mailbox_id>/<int:reply_id>/classer/", pages.file_reply, name="file_reply"),
]
