import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from cases import services
from tests.factories import home_lab, make_image


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """The token endpoint is throttled per client address through the cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    """An anonymous API client."""
    return APIClient()


@pytest.fixture
def clinician_api(clinician):
    client = APIClient()
    client.force_authenticate(user=clinician)
    return client


@pytest.fixture
def other_api(other_clinician):
    client = APIClient()
    client.force_authenticate(user=other_clinician)
    return client


@pytest.fixture
def staff_api(django_user_model):
    staff = django_user_model.objects.create_user(
        username="staff", password="pw-staff-123456", is_staff=True
    )
    client = APIClient()
    client.force_authenticate(user=staff)
    return client


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="MRN-0001",
        display_label="Patient A-1",
    )


@pytest.fixture
def image(patient, clinician):
    return make_image(patient, clinician)
