"""Create and edit patients through the services; their validation errors land on the form."""

from unittest import mock

import pytest
from django.urls import reverse

from cases import services
from cases.models import AuditEvent, Patient, Specimen
from tests.factories import default_specimen, home_lab, make_patient


def test_create_patient_and_land_on_its_page(clinician_client, clinician):
    response = clinician_client.post(
        reverse("cases:patient-create"),
        {
            "record_number": "  MRN-7 ",
            "display_label": "Patient B",
            "sex": "F",
            "birth_year": "2012",
        },
    )
    patient = Patient.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("cases:patient-detail", args=[patient.pk])
    assert (patient.record_number, patient.lab, patient.created_by, patient.birth_year) == (
        "MRN-7",
        home_lab(clinician),
        clinician,
        2012,
    )
    assert AuditEvent.objects.filter(event_type=AuditEvent.EventType.PATIENT_CREATED).count() == 1
    page = clinician_client.get(response["Location"]).text
    assert "Patient “Patient B” registered." in page


def test_another_labs_record_number_is_free_here(clinician_client, other_clinician):
    services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="MRN-1",
        display_label="Theirs",
    )
    response = clinician_client.post(
        reverse("cases:patient-create"), {"record_number": "MRN-1", "display_label": "Mine"}
    )
    assert response.status_code == 302


def test_duplicate_record_number_gets_a_clear_message(clinician_client, technologist):
    services.patient_create(
        lab=home_lab(technologist),
        created_by=technologist,
        record_number="MRN-1",
        display_label="Theirs",
    )
    response = clinician_client.post(
        reverse("cases:patient-create"), {"record_number": "MRN-1", "display_label": "Mine"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["record_number"] == [
        "Record number “MRN-1” is already registered in this lab: check the number, or open "
        "the existing patient."
    ]
    assert "already registered in this lab" in response.text
    assert Patient.objects.count() == 1


def test_required_fields(clinician_client):
    response = clinician_client.post(
        reverse("cases:patient-create"), {"record_number": "", "display_label": ""}
    )
    assert set(response.context["form"].errors) == {"record_number", "display_label"}
    assert "This field is required." in response.text
    assert not Patient.objects.exists()


def test_model_validation_from_the_service_lands_on_the_field(clinician_client):
    response = clinician_client.post(
        reverse("cases:patient-create"),
        {"record_number": "MRN-8", "display_label": "Old", "birth_year": "1800"},
    )
    assert response.context["form"].errors["birth_year"] == [
        "Ensure this value is greater than or equal to 1900."
    ]
    assert not Patient.objects.exists()


def test_blank_after_stripping_is_rejected_by_the_service(clinician_client):
    response = clinician_client.post(
        reverse("cases:patient-create"), {"record_number": "MRN-9", "display_label": "   "}
    )
    assert response.status_code == 200
    assert "display_label" in response.context["form"].errors
    assert not Patient.objects.exists()


def test_edit_patient(clinician_client, clinician, patient):
    url = reverse("cases:patient-edit", args=[patient.pk])
    page = clinician_client.get(url)
    assert page.context["form"].initial["record_number"] == "MRN-100"
    response = clinician_client.post(
        url, {"record_number": "MRN-100", "display_label": "Renamed", "sex": "M", "birth_year": ""}
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.display_label, patient.sex, patient.birth_year) == ("Renamed", "M", None)
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.PATIENT_UPDATED)
    assert event.extra_data["new"]["display_label"] == "Renamed"
    assert event.ip_address == "127.0.0.1"  # the page audited the edit without the address


def test_edit_to_a_taken_record_number_keeps_the_stored_values(
    clinician_client, clinician, patient
):
    services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="MRN-200",
        display_label="Second",
    )
    response = clinician_client.post(
        reverse("cases:patient-edit", args=[patient.pk]),
        {"record_number": "MRN-200", "display_label": "Changed", "sex": "", "birth_year": ""},
    )
    assert response.status_code == 200
    assert "already registered in this lab" in response.text
    assert response.context["patient"].display_label == "Patient A-17"
    patient.refresh_from_db()
    assert (patient.record_number, patient.display_label) == ("MRN-100", "Patient A-17")


def test_saving_an_unchanged_form_writes_nothing(clinician_client, patient):
    response = clinician_client.post(
        reverse("cases:patient-edit", args=[patient.pk]),
        {
            "record_number": "MRN-100",
            "display_label": "Patient A-17",
            "sex": "",
            "birth_year": "2014",
        },
        follow=True,
    )
    assert "Nothing was changed." in response.text
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.PATIENT_UPDATED).exists()


@pytest.mark.parametrize("editing", [False, True])
def test_a_record_number_registered_meanwhile_is_a_form_error(clinician_client, clinician, editing):
    """Both requests passed validation; the second one's save broke the constraint."""
    make_patient(clinician, record_number="MRN-1")
    other = make_patient(clinician, record_number="MRN-2", display_label="Other")
    url = reverse("cases:patient-edit", args=[other.pk]) if editing else None
    with mock.patch("cases.services.patients.full_clean"):
        response = clinician_client.post(
            url or reverse("cases:patient-create"),
            {"record_number": "MRN-1", "display_label": "Mine"},
        )
    assert response.status_code == 200
    assert "Record number “MRN-1” is already registered in this lab" in response.text
    assert Patient.objects.filter(record_number="MRN-1").count() == 1


def test_an_accession_number_registered_meanwhile_is_a_form_error(clinician_client, patient):
    """It answered 500: the page's specimen form did not expect the constraint to break."""
    taken = default_specimen(patient).accession_number
    with mock.patch("cases.services.specimens.full_clean"):
        response = clinician_client.post(
            reverse("cases:patient-detail", args=[patient.pk]),
            {"accession_number": taken, "specimen_type": "peripheral_blood"},
        )
    assert response.status_code == 200
    assert response.context["form"].errors["accession_number"] == [
        "A specimen with this accession number exists in this lab."
    ]
    assert Specimen.objects.filter(accession_number=taken).count() == 1
