"""Bench-only URLconf: the product's URLs plus the floor view (bench/webmail_floor.py)."""

from django.urls import path

from bench.webmail_floor import floor
from mssante.urls import urlpatterns as product

urlpatterns = [*product, path("bench/floor/<int:folder_id>/", floor, name="bench_floor")]
