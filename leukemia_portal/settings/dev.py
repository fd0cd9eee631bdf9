"""Development on a developer's machine (``manage.py runserver``): debug pages on.

Never the portal that ``scripts/run`` serves: that one uses ``local`` (DEBUG off).
"""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
