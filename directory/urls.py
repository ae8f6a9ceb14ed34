from django.urls import path

from directory import views

app_name = "directory"
urlpatterns = [
    path("", views.search_page, name="search"),
    path("completion/", views.completion, name="completion"),
    path("preferences/", views.preferences, name="preferences"),
]
