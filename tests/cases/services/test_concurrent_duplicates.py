"""Two requests register the same number at once: both pass validation, the second INSERT
breaks the lab-unique constraint. It used to escape as an ``IntegrityError`` (a 500); it is the
validation's own error on the field, and nothing is stored or audited."""

from unittest import mock

import pytest
from django.core.exceptions import ValidationError

from cases import services
from cases.models import AuditEvent, Patient, Specimen
from tests.factories import default_specimen, make_patient

TAKEN_RECORD = "A patient with this record number exists in this lab."
TAKEN_ACCESSION = "A specimen with this accession number exists in this lab."


def _register_patient(clinician, first, second):
    return services.patient_create(
        lab=first.lab, created_by=clinician, record_number="MRN-1", display_label="Again"
    )


def _change_patient(clinician, first, second):
    return services.patient_update(patient=second, user=clinician, data={"record_number": "MRN-1"})


def _register_specimen(clinician, first, second):
    return services.specimen_create(
        patient=second, created_by=clinician, accession_number=f"S-{first.pk}"
    )


def _change_specimen(clinician, first, second):
    return services.specimen_update(
        specimen=default_specimen(second),
        user=clinician,
        data={"accession_number": f"S-{first.pk}"},
    )


@pytest.mark.parametrize(
    ("action", "module", "field", "message"),
    [
        (_register_patient, "patients", "record_number", TAKEN_RECORD),
        (_change_patient, "patients", "record_number", TAKEN_RECORD),
        (_register_specimen, "specimens", "accession_number", TAKEN_ACCESSION),
        (_change_specimen, "specimens", "accession_number", TAKEN_ACCESSION),
    ],
)
def test_a_duplicate_registered_meanwhile_is_the_validation_error(
    clinician, action, module, field, message
):
    first = make_patient(clinician, record_number="MRN-1")
    second = make_patient(clinician, record_number="MRN-2")
    default_specimen(first), default_specimen(second)
    before = (Patient.objects.count(), Specimen.objects.count(), AuditEvent.objects.count())

    # Validation ran before the other request's row was committed: it found nothing.
    with (
        mock.patch(f"cases.services.{module}.full_clean"),
        pytest.raises(ValidationError) as exc,
    ):
        action(clinician, first, second)

    assert exc.value.message_dict == {field: [message]}
    after = (Patient.objects.count(), Specimen.objects.count(), AuditEvent.objects.count())
    assert after == before
    assert Patient.objects.filter(record_number="MRN-2").exists()
    assert Specimen.objects.filter(accession_number=f"S-{second.pk}").exists()
