"""The ``.env`` file in the repository root: read for the portal, never for the test suite.

A developer's ``.env`` names their own portal's database and queue (README, "Running with
PostgreSQL and Redis"). Read into the test settings, it made the suite's worker tasks go to the
running portal's queue and skipped the test settings' own probes (``test.py``). The tests take
only what their own environment says, also in the portals and workers they start with other
settings: the suite sets ``LP_DOTENV=off`` for them (``tests/conftest.py``).
"""

import os

import environ

TEST_SETTINGS = "leukemia_portal.settings.test"


def read_dotenv(path, *, settings_module: str) -> bool:
    """Copy ``path``'s variables into ``os.environ`` (the environment wins); whether it did."""
    if settings_module == TEST_SETTINGS or os.environ.get("LP_DOTENV") == "off":
        return False
    environ.Env.read_env(path, overwrite=False)
    return True
