"""Test settings: the real PostgreSQL and Redis on localhost when they answer, else the defaults.

``DATABASE_URL`` / ``CELERY_BROKER_URL`` win when set. Otherwise a quick socket probe picks
PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (database 15, kept apart from a
developer's own queue), so the suite runs against real services on any machine that has them.
"""

import os
import socket
import tempfile

from .base import *  # noqa: F403
from .base import env, sqlite_options


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and _reachable("127.0.0.1", 5432):
    DATABASES = {"default": env.db_url_config("postgres://postgres@127.0.0.1:5432/leukemia_portal")}

if "CELERY_BROKER_URL" not in os.environ and _reachable("127.0.0.1", 6379):
    CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Kept in the environment so a Celery worker started by a test sees the same media folder.
MEDIA_ROOT = Path(
    os.environ.setdefault("LP_TEST_MEDIA_ROOT", tempfile.mkdtemp(prefix="lp-test-media-"))
)  # noqa: F405
STORAGES = {  # noqa: F405
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not an in-memory database, so a Celery worker started by a test can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
    sqlite_options(DATABASES["default"])  # noqa: F405

# Fault injection for the fault tests' worker processes (never set outside tests).
LP_FAULT_DELAY_AFTER_CLAIM_S = env.float("LP_FAULT_DELAY_AFTER_CLAIM_S", default=0.0)

# Grad-CAM maps cost the worker seconds per image: off in tests unless a test turns it on
# (tests/cases/tasks/test_saliency.py), so the worker tests time classification alone.
LP_SALIENCY = env.bool("LP_SALIENCY", default=False)
