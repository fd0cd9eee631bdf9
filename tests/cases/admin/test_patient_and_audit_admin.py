"""Patients in the admin (through the services, audited) and the read-only audit log."""

from django.urls import reverse

from cases import services
from cases.models import AuditEvent, Patient
from tests.factories import home_lab, make_image


def test_the_patient_list_shows_lab_creator_and_image_count(
    admin_client_logged_in, patient, clinician
):
    make_image(patient, clinician, seed=121)
    make_image(patient, clinician, seed=122)

    response = admin_client_logged_in.get(reverse("admin:cases_patient_changelist"))

    html = response.content.decode()
    assert "MRN-ADM-1" in html and "dr_ada" in html and "Lab A" in html
    [row] = response.context["cl"].result_list
    assert row.image_count == 2
    assert f"?patient__id__exact={patient.pk}" in html


def test_patients_are_searched_by_record_number_and_label(
    admin_client_logged_in, patient, other_clinician
):
    services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="Z-9",
        display_label="Zulu",
    )
    url = reverse("admin:cases_patient_changelist")

    def found(term):
        return [
            p.record_number
            for p in admin_client_logged_in.get(url, {"q": term}).context["cl"].result_list
        ]

    assert found("adm-1") == ["MRN-ADM-1"]
    assert found("zulu") == ["Z-9"]


def test_patients_are_read_only_in_the_admin(admin_client_logged_in, patient):
    """Patients are registered and corrected by the lab's members in the portal, where the
    roles apply; the admin shows them."""
    assert admin_client_logged_in.get(reverse("admin:cases_patient_add")).status_code == 403
    url = reverse("admin:cases_patient_change", args=[patient.pk])
    page = admin_client_logged_in.get(url)
    assert page.status_code == 200 and "Save" not in page.content.decode()
    response = admin_client_logged_in.post(
        url, {"record_number": "X", "display_label": "Changed", "sex": "", "birth_year": ""}
    )
    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.display_label == "Admin case 1"
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.PATIENT_UPDATED).exists()


def test_patients_cannot_be_deleted_from_the_admin(admin_client_logged_in, patient):
    url = reverse("admin:cases_patient_delete", args=[patient.pk])
    assert admin_client_logged_in.post(url, {"post": "yes"}).status_code == 403
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_the_audit_log_is_a_read_only_list(admin_client_logged_in, patient, clinician):
    services.patient_update(patient=patient, user=clinician, data={"display_label": "Renamed"})
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.PATIENT_UPDATED)

    page = admin_client_logged_in.get(reverse("admin:cases_auditevent_changelist"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Patient updated" in html and "Patient created" in html
    assert "dr_ada" in html and "Renamed" in html and "Admin case 1" in html
    filtered = admin_client_logged_in.get(
        reverse("admin:cases_auditevent_changelist"),
        {"event_type__exact": AuditEvent.EventType.PATIENT_UPDATED},
    )
    assert [e.pk for e in filtered.context["cl"].result_list] == [event.pk]

    assert admin_client_logged_in.get(reverse("admin:cases_auditevent_add")).status_code == 403
    change_url = reverse("admin:cases_auditevent_change", args=[event.pk])
    assert admin_client_logged_in.post(change_url, {}).status_code == 403
    delete_url = reverse("admin:cases_auditevent_delete", args=[event.pk])
    assert admin_client_logged_in.post(delete_url, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
