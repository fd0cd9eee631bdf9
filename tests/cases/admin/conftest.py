import pytest

from cases import services
from tests.factories import home_lab, make_image


@pytest.fixture
def admin_client_logged_in(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="MRN-ADM-1",
        display_label="Admin case 1",
    )


@pytest.fixture
def image(patient, clinician):
    return make_image(patient, clinician, seed=101, name="admin-field.png")
