"""Production: fail fast when a required variable is missing; HTTPS only; no debug.

``manage.py check --deploy`` is clean with the variables the README lists for production
(``DJANGO_SECRET_KEY``, ``DATABASE_URL``, ``CELERY_BROKER_URL``, ``DJANGO_ALLOWED_HOSTS``), behind
a TLS-terminating proxy that sets ``X-Forwarded-Proto``.
"""

from .base import *  # noqa: F403
from .base import connection_lifetime, env, sqlite_options

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: a missing secret stops start-up
DATABASES = {"default": sqlite_options(env.db("DATABASE_URL"))}
connection_lifetime(DATABASES["default"], env.int("DJANGO_CONN_MAX_AGE", default=60))
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
