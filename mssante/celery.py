"""The Celery application. Without a broker (`CELERY_BROKER_URL` unset) tasks run in process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mssante.settings")

app = Celery("mssante")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
