"""Shared fixtures: users, logged-in clients. Layer-specific fixtures live beside their tests."""

import pytest
from django.contrib.auth import get_user_model

# Fixture modules shared across layers; each documents its fixtures.
pytest_plugins = ["tests.fixtures.worker"]


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
