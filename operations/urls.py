from django.urls import path

from operations import views

app_name = "operations"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("exploitation/", views.dashboard, name="dashboard"),
    path("exploitation/statistiques/", views.statistics, name="statistics"),
    path("exploitation/indicateurs/", views.indicators, name="indicators"),
]
