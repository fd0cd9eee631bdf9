"""Shared fixtures: users, logged-in clients. Layer-specific fixtures live beside their tests."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

# The processes the tests start (a portal on the ``local`` settings, workers) must not read a
# developer's ``.env`` either: it names their own portal's database and queue.
os.environ["LP_DOTENV"] = "off"

# Fixture modules shared across layers; each documents its fixtures.
pytest_plugins = ["tests.fixtures.ensemble", "tests.fixtures.worker"]


def _member(username: str, password: str, lab_name: str, role: str):
    from cases.models import Lab, Membership

    user = get_user_model().objects.create_user(username=username, password=password)
    lab, _ = Lab.objects.get_or_create(name=lab_name)
    Membership.objects.create(lab=lab, user=user, role=role)
    return user


@pytest.fixture
def lab(db):
    from cases.models import Lab

    return Lab.objects.get_or_create(name="Lab A")[0]


@pytest.fixture
def other_lab(db):
    from cases.models import Lab

    return Lab.objects.get_or_create(name="Lab B")[0]


@pytest.fixture
def clinician(lab):
    """A hematologist of Lab A: every clinical right (register, upload, verify, sign)."""
    return _member("dr_ada", "pw-ada-123456", lab.name, "hematologist")


@pytest.fixture
def other_clinician(other_lab):
    """A hematologist of another lab (Lab B): sees none of Lab A's data."""
    return _member("dr_bob", "pw-bob-123456", other_lab.name, "hematologist")


@pytest.fixture
def technologist(lab):
    return _member("tech_tom", "pw-tom-123456", lab.name, "technologist")


@pytest.fixture
def hematologist(clinician):
    return clinician


@pytest.fixture
def manager(lab):
    return _member("mgr_meg", "pw-meg-123456", lab.name, "manager")


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


@pytest.fixture
def isolated_media(settings, tmp_path):
    """A fresh, empty default storage for this test (not for tests using ``demo_version``,
    whose artifacts live in the session's media folder)."""
    location = tmp_path / "media"
    location.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    settings.MEDIA_ROOT = location
    return location
