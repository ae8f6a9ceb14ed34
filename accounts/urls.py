from django.urls import path

from accounts import views

urlpatterns = [
    path("mots-de-passe-application/", views.app_passwords, name="app_passwords"),
    path("mots-de-passe-application/nouveau/", views.app_password_create, name="app_password_create"),
    path("mots-de-passe-application/<int:pk>/revoquer/", views.app_password_revoke, name="app_password_revoke"),
]
urlpatterns += [
    path("session/prolonger/", views.session_keepalive, name="session_keepalive"),
    path("session/expiree/", views.session_expired, name="session_expired"),
]
