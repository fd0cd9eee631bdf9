"""The Celery application. Workers are started with ``celery -A leukemia_portal worker``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leukemia_portal.settings.local")

app = Celery("leukemia_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
