"""The portal that ``scripts/run`` starts on one machine: safe by default, no configuration needed.

DEBUG is off (the project's own 404 and 500 pages, never Django's technical pages), the secret key
is generated once and kept in ``var/secret_key`` (readable by its owner only), static files are
served by whitenoise. Everything else comes from ``base`` and the environment (``.env``).
"""

import os
import secrets

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = False


def _secret_key_from(path) -> str:
    """The key kept in ``path``; on the first run, a new random key written there (0600)."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 50:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


SECRET_KEY = env("DJANGO_SECRET_KEY", default="") or _secret_key_from(VAR_DIR / "secret_key")
