import pytest
from django.core.exceptions import ValidationError

from cases import services
from cases.models import AuditEvent, Patient


def test_patient_create_saves_and_audits(clinician):
    patient = services.patient_create(
        owner=clinician, record_number="  MRN-1 ", display_label="Patient A", birth_year=1980
    )
    assert patient.record_number == "MRN-1"
    event = AuditEvent.objects.get(patient=patient)
    assert event.event_type == AuditEvent.EventType.PATIENT_CREATED
    assert event.acting_user == clinician
    assert event.extra_data["new"]["record_number"] == "MRN-1"


def test_duplicate_record_number_is_a_clear_error_and_stores_nothing(clinician, other_clinician):
    services.patient_create(owner=clinician, record_number="MRN-2", display_label="A")
    with pytest.raises(ValidationError) as exc:
        services.patient_create(owner=other_clinician, record_number="MRN-2", display_label="B")
    assert "record_number" in exc.value.message_dict
    assert Patient.objects.count() == 1
    assert AuditEvent.objects.count() == 1


def test_patient_update_records_old_and_new_values(clinician):
    patient = services.patient_create(owner=clinician, record_number="MRN-3", display_label="A")
    services.patient_update(patient=patient, user=clinician, data={"display_label": "B", "sex": ""})
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.PATIENT_UPDATED)
    assert event.extra_data == {"old": {"display_label": "A"}, "new": {"display_label": "B"}}


def test_patient_update_without_change_writes_no_audit_row(clinician):
    patient = services.patient_create(owner=clinician, record_number="MRN-4", display_label="A")
    services.patient_update(patient=patient, user=clinician, data={"display_label": "A"})
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.PATIENT_UPDATED).exists()


def test_birth_year_out_of_range_is_rejected(clinician):
    with pytest.raises(ValidationError) as exc:
        services.patient_create(
            owner=clinician, record_number="MRN-5", display_label="A", birth_year=1700
        )
    assert "birth_year" in exc.value.message_dict
