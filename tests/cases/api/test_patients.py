"""Patients through the API: create, list, search, show, change; scoped to the owner."""

from unittest import mock

import pytest

from cases import services
from cases.models import AuditEvent, Patient
from tests.factories import default_specimen, home_lab, make_patient

URL = "/api/v1/patients/"


def detail(pk):
    return f"/api/v1/patients/{pk}/"


def test_create_registers_the_patient_for_the_caller(clinician_api, clinician):
    response = clinician_api.post(
        URL,
        {
            "record_number": " MRN-7 ",
            "display_label": "Patient B-7",
            "sex": "F",
            "birth_year": 1990,
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    patient = Patient.objects.get()
    assert (patient.created_by, patient.record_number, patient.sex) == (clinician, "MRN-7", "F")
    assert patient.lab == home_lab(clinician)
    assert body["id"] == patient.pk
    assert body["record_number"] == "MRN-7"
    assert (body["created_by"], body["lab"]) == ("dr_ada", "Lab A")
    assert body["image_count"] == 0
    assert body["last_upload"] is None
    assert body["url"] == f"http://testserver/api/v1/patients/{patient.pk}/"
    assert body["images_url"] == f"http://testserver/api/v1/patients/{patient.pk}/images/"
    assert AuditEvent.objects.filter(
        patient=patient, event_type=AuditEvent.EventType.PATIENT_CREATED, acting_user=clinician
    ).exists()


def test_a_duplicate_record_number_is_refused_with_a_clear_message(clinician_api, technologist):
    services.patient_create(
        lab=home_lab(technologist),
        created_by=technologist,
        record_number="MRN-9",
        display_label="X",
    )

    response = clinician_api.post(
        URL, {"record_number": "MRN-9", "display_label": "Y"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "record_number": ["A patient with this record number exists in this lab."]
    }
    assert Patient.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"display_label": "No record number"}, "record_number"),
        ({"record_number": "MRN-1"}, "display_label"),
        ({"record_number": "MRN-1", "display_label": "A", "birth_year": 1850}, "birth_year"),
        ({"record_number": "MRN-1", "display_label": "A", "sex": "Q"}, "sex"),
        ({"record_number": "x" * 65, "display_label": "A"}, "record_number"),
    ],
)
def test_invalid_input_is_refused_field_by_field(clinician_api, payload, field):
    response = clinician_api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Patient.objects.exists()


def test_the_list_holds_only_the_callers_patients(clinician_api, clinician, other_clinician):
    services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="A-1", display_label="Mine 1"
    )
    services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="A-2", display_label="Mine 2"
    )
    services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="B-1",
        display_label="Theirs",
    )

    body = clinician_api.get(URL).json()

    assert body["count"] == 2
    assert [p["record_number"] for p in body["results"]] == ["A-2", "A-1"]  # newest first


def test_staff_see_every_patient(staff_api, clinician, other_clinician):
    services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="A-1", display_label="Ada's"
    )
    services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="B-1",
        display_label="Bob's",
    )

    assert staff_api.get(URL).json()["count"] == 2


def test_search_matches_record_number_or_label_in_any_case(clinician_api, clinician):
    services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="MRN-100",
        display_label="Alpha",
    )
    services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="MRN-200", display_label="Beta"
    )

    def found(term):
        return [
            p["record_number"] for p in clinician_api.get(URL, {"search": term}).json()["results"]
        ]

    assert found("mrn-1") == ["MRN-100"]
    assert found("BETA") == ["MRN-200"]
    assert found("") == ["MRN-200", "MRN-100"]
    assert found("gamma") == []


def test_the_list_counts_images(clinician_api, patient, image):
    [row] = clinician_api.get(URL).json()["results"]
    assert row["image_count"] == 1
    assert row["last_upload"] is not None


def test_show_and_change_a_patient(clinician_api, clinician, patient):
    assert clinician_api.get(detail(patient.pk)).json()["display_label"] == "Patient A-1"

    response = clinician_api.patch(
        detail(patient.pk), {"display_label": "Patient A-1 (renamed)"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["display_label"] == "Patient A-1 (renamed)"
    assert response.json()["record_number"] == "MRN-0001"  # untouched
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.PATIENT_UPDATED)
    assert event.acting_user == clinician
    assert event.extra_data == {
        "old": {"display_label": "Patient A-1"},
        "new": {"display_label": "Patient A-1 (renamed)"},
    }


def test_a_change_to_a_taken_record_number_is_refused(clinician_api, clinician, patient):
    services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="MRN-0002",
        display_label="Other",
    )

    response = clinician_api.patch(detail(patient.pk), {"record_number": "MRN-0002"}, format="json")

    assert response.status_code == 400
    assert response.json()["record_number"] == [
        "A patient with this record number exists in this lab."
    ]
    patient.refresh_from_db()
    assert patient.record_number == "MRN-0001"


def test_a_manager_cannot_register_patients(clinician, manager):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user=manager)
    response = api.post(URL, {"record_number": "M-1", "display_label": "M"}, format="json")
    assert response.status_code == 403
    assert "may register patients" in response.json()["detail"]
    assert not Patient.objects.exists()


def test_another_labs_patient_does_not_exist(other_api, patient):
    assert other_api.get(detail(patient.pk)).status_code == 404
    assert (
        other_api.patch(
            detail(patient.pk), {"display_label": "Hijacked"}, format="json"
        ).status_code
        == 404
    )
    patient.refresh_from_db()
    assert patient.display_label == "Patient A-1"
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.PATIENT_UPDATED).exists()


def test_an_unknown_patient_is_404(clinician_api):
    assert clinician_api.get(detail(999999)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "patients/", {"record_number": "MRN-1", "display_label": "Y"}, "record_number"),
        ("patch", "patients/{second}/", {"record_number": "MRN-1"}, "record_number"),
        (
            "post",
            "patients/{second}/specimens/",
            {"accession_number": "S-{first}"},
            "accession_number",
        ),
        ("patch", "specimens/{specimen}/", {"accession_number": "S-{first}"}, "accession_number"),
    ],
)
def test_a_duplicate_registered_meanwhile_is_a_400_not_a_500(
    clinician_api, clinician, method, path, body, field
):
    """Both requests passed validation; the second one's save used to answer 500."""
    first = make_patient(clinician, record_number="MRN-1")
    second = make_patient(clinician, record_number="MRN-2")
    default_specimen(first)
    ids = {"first": first.pk, "second": second.pk, "specimen": default_specimen(second).pk}
    body = {name: value.format(**ids) for name, value in body.items()}
    module = "patients" if field == "record_number" else "specimens"

    with mock.patch(f"cases.services.{module}.full_clean"):
        response = getattr(clinician_api, method)(
            f"/api/v1/{path.format(**ids)}", body, format="json"
        )

    assert response.status_code == 400
    assert response.json() == {field: [mock.ANY]}
    assert "exists in this lab" in response.json()[field][0]
