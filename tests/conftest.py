"""Shared fixtures: users, logged-in clients. Layer-specific fixtures live beside their tests."""

import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

# Fixture modules shared across layers; each documents its fixtures.
pytest_plugins = ["tests.fixtures.ensemble", "tests.fixtures.worker"]


@pytest.fixture
def clinician(db):
    return get_user_model().objects.create_user(username="dr_ada", password="pw-ada-123456")


@pytest.fixture
def other_clinician(db):
    return get_user_model().objects.create_user(username="dr_bob", password="pw-bob-123456")


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser(
        username="admin", password="pw-admin-123456", email="admin@example.org"
    )


@pytest.fixture
def clinician_client(client, clinician):
    client.force_login(clinician)
    return client


@pytest.fixture(scope="session", autouse=True)
def _remove_test_media_afterwards():
    """The test settings put media in a fresh temporary folder; remove it when the run ends."""
    yield
    media = Path(settings.MEDIA_ROOT)
    if media.parent == Path(tempfile.gettempdir()) and media.name.startswith("lp-test-media-"):
        shutil.rmtree(media, ignore_errors=True)
