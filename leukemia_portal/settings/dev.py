"""Local development and the one-command demo: debug pages on, everything else from ``base``."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
