"""Fixtures for the inference tests (the shared ``demo_version`` lives in tests/fixtures)."""

import pytest


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
