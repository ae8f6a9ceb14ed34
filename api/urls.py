from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from api import problems, views

app_name = "api"
urlpatterns = [
    path("v1/messages", views.MessagesView.as_view(), name="messages"),
    path("v1/messages/<int:message_id>", views.MessageView.as_view(), name="message"),
    path("v1/boxes/<str:box>/messages", views.BoxMessagesView.as_view(), name="box-messages"),
    path("v1/boxes/<str:box>/messages/<int:entry_id>/raw", views.RawView.as_view(), name="raw"),
    path(
        "v1/boxes/<str:box>/messages/<int:entry_id>/attachments/<int:attachment_id>",
        views.AttachmentView.as_view(),
        name="attachment",
    ),
    path("v1/boxes/<str:box>/replies", views.RepliesView.as_view(), name="replies"),
    path("v1/boxes/<str:box>/replies/<int:reply_id>/filed", views.FileReplyView.as_view(), name="file-reply"),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("v1/docs", views.DocsView.as_view(url_name="api:schema"), name="docs"),
    # Last: any other path under /api/ is a `404 not_found` problem, whatever DEBUG says.
    re_path(r"^", problems.no_route, name="no-route"),
]
