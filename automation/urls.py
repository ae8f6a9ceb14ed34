from django.urls import path

from automation import views

app_name = "automation"
urlpatterns = [
    path("", views.index, name="index"),
    path("modeles/nouveau", views.model_create, name="model_create"),
    path("modeles/<int:model_id>/", views.model_edit, name="model"),
    path("modeles/<int:model_id>/apercu", views.model_preview, name="model_preview"),
    path("convocations/nouvelle", views.convocation_create, name="convocation_create"),
    path("convocations/<int:convocation_id>/", views.convocation_detail, name="convocation"),
    path("convocations/<int:convocation_id>/annuler", views.convocation_cancel, name="convocation_cancel"),
    path("campagnes/nouvelle", views.campaign_create, name="campaign_create"),
    path("campagnes/<int:campaign_id>/", views.campaign_detail, name="campaign"),
    path("campagnes/<int:campaign_id>/colonnes", views.campaign_mapping, name="campaign_mapping"),
    path("campagnes/<int:campaign_id>/progression", views.campaign_progress, name="campaign_progress"),
    path("campagnes/<int:campaign_id>/rapport.csv", views.campaign_report_csv, name="campaign_report"),
    path(
        "campagnes/<int:campaign_id>/<str:action>",
        views.campaign_control,
        name="campaign_control",
    ),
]
