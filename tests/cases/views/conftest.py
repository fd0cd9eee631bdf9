"""Fixtures for the clinician page tests: a patient, a stored image, and the builders of
``tests.factories`` for model versions and predictions (no ensemble runs in these tests)."""

import pytest

from cases import services
from tests import factories
from tests.factories import home_lab


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="MRN-100",
        display_label="Patient A-17",
        birth_year=2014,
    )


@pytest.fixture
def image(patient, clinician):
    return factories.make_image(patient, clinician, seed=1, name="field-1.png")


@pytest.fixture
def make_version(db):
    """``factories.make_model_version``, e.g. ``make_version(3, status="active")``."""
    return factories.make_model_version


@pytest.fixture
def make_prediction(db):
    """``factories.make_prediction``: ``make_prediction(image, version=v, …)``."""
    return factories.make_prediction
