from django.urls import path

from clients import views

app_name = "clients"
urlpatterns = [
    path(".well-known/autoconfig/mail/config-v1.1.xml", views.thunderbird, name="autoconfig_wellknown"),
    path("mail/config-v1.1.xml", views.thunderbird, name="autoconfig"),
    path("autodiscover/autodiscover.xml", views.outlook, name="autodiscover"),
    path("Autodiscover/Autodiscover.xml", views.outlook, name="autodiscover_capitalised"),
]
