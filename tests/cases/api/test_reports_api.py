"""Reports through the API and the pages: the signed PDF, FHIR, the CSV, the print view."""

import csv
import hashlib
import io

import pytest
from django.urls import reverse
from fhir.resources.bundle import Bundle
from pypdf import PdfReader
from rest_framework.test import APIClient

from cases import services
from cases.models import AuditEvent
from tests.factories import default_specimen, make_image, make_patient, make_prediction

EventType = AuditEvent.EventType


@pytest.fixture
def specimen(clinician):
    patient = make_patient(clinician, "MRN-API-REP", "Patient API")
    specimen = default_specimen(patient, clinician)
    for seed in (3101, 3102):
        image = make_image(patient, clinician, seed=seed, specimen=specimen)
        make_prediction(image)
        services.verdict_record(image=image, user=clinician, kind="confirm")
    return specimen


def sign_via_api(api, specimen):
    response = api.post(
        f"/api/v1/specimens/{specimen.pk}/sign-off/", {"interpretation": "Pro"}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_the_signed_pdf_comes_back_byte_for_byte_and_is_audited(clinician_api, specimen):
    signed = sign_via_api(clinician_api, specimen)
    report = signed["report"]
    assert len(report["sha256"]) == 64 and report["pages"] >= 1
    response = clinician_api.get(
        f"/api/v1/specimens/{specimen.pk}/report.pdf", HTTP_ACCEPT="application/pdf"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert hashlib.sha256(response.content).hexdigest() == report["sha256"]
    assert "attachment" in response["Content-Disposition"]
    assert AuditEvent.objects.filter(
        specimen=specimen, event_type=EventType.REPORT_DOWNLOADED
    ).exists()
    for version in ("7", "²", "x"):
        missing = clinician_api.get(f"/api/v1/specimens/{specimen.pk}/report.pdf?version={version}")
        assert missing.status_code == 404, version


def test_an_unsigned_specimen_gives_a_draft_pdf_and_no_fhir(clinician_api, specimen):
    draft = clinician_api.get(f"/api/v1/specimens/{specimen.pk}/report.pdf")
    assert draft.status_code == 200
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(draft.content)).pages)
    assert "DRAFT" in text
    fhir = clinician_api.get(f"/api/v1/specimens/{specimen.pk}/fhir/")
    assert fhir.status_code == 409 and "not signed" in fhir.json()["detail"]


def test_fhir_is_served_as_fhir_json_and_validates(clinician_api, specimen):
    sign_via_api(clinician_api, specimen)
    response = clinician_api.get(
        f"/api/v1/specimens/{specimen.pk}/fhir/", HTTP_ACCEPT="application/fhir+json"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    bundle = Bundle.parse_raw(response.content)
    kinds = [entry.resource.resource_type for entry in bundle.entry]
    form = bundle.entry[0].resource.presentedForm[0]
    pdf = clinician_api.get(form.url)  # the PDF by reference, with the same credentials
    assert pdf.status_code == 200 and len(pdf.content) == form.size
    assert b"MRN-API-REP" not in response.content
    assert kinds.count("DiagnosticReport") == 1 and kinds.count("Observation") == 2
    assert AuditEvent.objects.filter(specimen=specimen, event_type=EventType.FHIR_EXPORTED).exists()


def test_reports_are_for_the_labs_members_only(specimen, clinician_api, other_api, staff_api):
    sign_via_api(clinician_api, specimen)
    lab = specimen.lab_id
    for url in (
        f"/api/v1/specimens/{specimen.pk}/report.pdf",
        f"/api/v1/specimens/{specimen.pk}/fhir/",
        f"/api/v1/labs/{lab}/images.csv",
    ):
        assert other_api.get(url).status_code == 404, url
        refused = staff_api.get(url)
        assert refused.status_code == 403, url
        assert "Only a" in refused.json()["detail"]


def test_the_csv_streams_the_labs_images_with_a_header(clinician_api, specimen):
    response = clinician_api.get(
        f"/api/v1/labs/{specimen.lab_id}/images.csv", HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {row["accession_number"] for row in rows} == {specimen.accession_number}
    assert all(row["verdict"] == "confirm" for row in rows)
    for query in ("from=yesterday", "to=0001-01-01", "specimen=²"):
        bad = clinician_api.get(f"/api/v1/labs/{specimen.lab_id}/images.csv?{query}")
        assert bad.status_code == 400, (query, bad.status_code)


def test_the_print_view_prints_no_forms_and_the_page_offers_the_reports(
    client, clinician, specimen
):
    client.force_login(clinician)
    page = client.get(reverse("cases:specimen-report", args=[specimen.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<form" not in html and "DRAFT, not signed" in html
    assert 'class="report-toolbar no-print"' in html  # the only buttons, hidden in print
    detail = client.get(reverse("cases:specimen-detail", args=[specimen.pk])).content.decode()
    assert "Print view (draft)" in detail and "Images as CSV" in detail
    assert "Download PDF" not in detail  # not before signing
    sign_via_api(_api_for(clinician), specimen)
    detail = client.get(reverse("cases:specimen-detail", args=[specimen.pk])).content.decode()
    assert "Download PDF (version 1)" in detail and "FHIR R4" in detail
    pdf = client.get(reverse("cases:specimen-report-pdf", args=[specimen.pk]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def _api_for(user):
    api = APIClient()
    api.force_authenticate(user=user)
    return api
