"""The product's URLs plus one view that fails, for tests/operations/test_error_mail.py."""

from django.urls import path

from mssante.urls import urlpatterns as product


def failing(request, address):
    raise RuntimeError("simulated failure")


urlpatterns = [*product, path("panne/<str:address>", failing)]
