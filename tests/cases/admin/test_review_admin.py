"""The review workflow in the admin: read-only, filterable, reads audited."""

import pytest
from django.urls import reverse

from cases import services
from cases.models import AuditEvent
from tests.factories import default_specimen, make_image, make_prediction


@pytest.fixture
def signed(patient, clinician):
    image = make_image(patient, clinician, seed=900)
    make_prediction(image, member_labels=["Pro"] * 5)
    services.verdict_record(image=image, user=clinician, kind="confirm")
    specimen = default_specimen(patient)
    services.specimen_sign_out(specimen=specimen, user=clinician, interpretation="Pro")
    return specimen


@pytest.mark.parametrize(
    "model", ["specimen", "verdict", "signoff", "casereport", "lab", "membership", "imageflag"]
)
def test_the_review_models_are_listed_and_read_only(admin_client_logged_in, signed, model):
    response = admin_client_logged_in.get(reverse(f"admin:cases_{model}_changelist"))
    assert response.status_code == 200
    assert admin_client_logged_in.get(reverse(f"admin:cases_{model}_add")).status_code == 403


def test_a_specimen_shows_its_sign_off_and_the_read_is_audited(
    admin_client_logged_in, signed, admin_user
):
    page = admin_client_logged_in.get(reverse("admin:cases_specimen_change", args=[signed.pk]))
    html = page.content.decode()
    assert "Pro-B ALL" in html and reverse("cases:specimen-detail", args=[signed.pk]) in html
    assert AuditEvent.objects.filter(
        event_type=AuditEvent.EventType.SPECIMEN_VIEWED, acting_user=admin_user, specimen=signed
    ).exists()


def test_verdicts_filter_by_kind(admin_client_logged_in, signed):
    url = reverse("admin:cases_verdict_changelist")
    assert (
        len(admin_client_logged_in.get(url, {"kind__exact": "confirm"}).context["cl"].result_list)
        == 1
    )
    assert (
        not admin_client_logged_in.get(url, {"kind__exact": "reclassify"}).context["cl"].result_list
    )
