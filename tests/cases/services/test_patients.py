import pytest
from django.core.exceptions import ValidationError

from cases import services
from cases.models import AuditEvent, Patient
from cases.roles import RoleRequired
from tests.factories import home_lab


def test_patient_create_saves_and_audits(clinician):
    patient = services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="  MRN-1 ",
        display_label="Patient A",
        birth_year=1980,
    )
    assert patient.record_number == "MRN-1"
    event = AuditEvent.objects.get(patient=patient)
    assert event.event_type == AuditEvent.EventType.PATIENT_CREATED
    assert event.acting_user == clinician
    assert event.extra_data["new"]["record_number"] == "MRN-1"


def test_duplicate_record_number_is_a_clear_error_and_stores_nothing(clinician, technologist):
    services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="MRN-2", display_label="A"
    )
    with pytest.raises(ValidationError) as exc:
        services.patient_create(
            lab=home_lab(technologist),
            created_by=technologist,
            record_number="MRN-2",
            display_label="B",
        )
    assert exc.value.messages == ["A patient with this record number exists in this lab."]
    assert Patient.objects.count() == 1
    assert AuditEvent.objects.count() == 1


def test_record_numbers_are_unique_within_a_lab_only(clinician, other_clinician):
    """Another lab's numbers are its own: the same number is accepted there, so the uniqueness
    check reveals nothing about patients outside the lab."""
    services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="MRN-7", display_label="A"
    )
    theirs = services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="MRN-7",
        display_label="B",
    )
    assert theirs.lab == home_lab(other_clinician)


def test_only_a_clinical_member_of_the_lab_registers_patients(clinician, manager, other_clinician):
    for user in (manager, other_clinician):
        with pytest.raises(RoleRequired):
            services.patient_create(
                lab=home_lab(clinician), created_by=user, record_number="X", display_label="X"
            )
    assert not Patient.objects.exists()


def test_patient_update_records_old_and_new_values(clinician):
    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="MRN-3", display_label="A"
    )
    services.patient_update(patient=patient, user=clinician, data={"display_label": "B", "sex": ""})
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.PATIENT_UPDATED)
    assert event.extra_data == {"old": {"display_label": "A"}, "new": {"display_label": "B"}}


def test_patient_update_without_change_writes_no_audit_row(clinician):
    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="MRN-4", display_label="A"
    )
    services.patient_update(patient=patient, user=clinician, data={"display_label": "A"})
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.PATIENT_UPDATED).exists()


def test_birth_year_out_of_range_is_rejected(clinician):
    with pytest.raises(ValidationError) as exc:
        services.patient_create(
            lab=home_lab(clinician),
            created_by=clinician,
            record_number="MRN-5",
            display_label="A",
            birth_year=1700,
        )
    assert "birth_year" in exc.value.message_dict
