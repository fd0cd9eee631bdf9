"""The case report (PDF), its storage at signing, FHIR and the image CSV.

The PDF is read back with pypdf: what a laboratory needs on it is checked as text. FHIR is
checked by parsing it again with ``fhir.resources`` (which validates), and the CSV by reading it
with Python's csv module, as a spreadsheet would.
"""

import base64
import csv
import hashlib
import io
import json

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, OperationalError, transaction
from fhir.resources.bundle import Bundle
from pypdf import PdfReader

from cases import services
from cases.models import AuditEvent, CaseReport, Specimen
from cases.reports import table
from cases.reports.context import report_context
from cases.reports.fhir import specimen_bundle
from cases.reports.pdf import render_report_pdf
from tests.factories import (
    default_specimen,
    make_image,
    make_model_version,
    make_patient,
    make_prediction,
)

EventType = AuditEvent.EventType


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def flat(text: str) -> str:
    """PDF text with its line breaks and repeated spaces folded (wrapping is layout)."""
    return " ".join(text.split())


@pytest.fixture
def case(clinician):
    """A specimen of three images: a confirmed Pro, a reclassified one (a flagged split vote),
    and one not assessable; by a model version with validated figures."""
    patient = make_patient(clinician, "MRN-REPORT-1", "Patient R-7")
    specimen = services.specimen_update(
        specimen=default_specimen(patient, clinician),
        user=clinician,
        data={"clinical_question": "Lymphocytosis; rule out ALL."},
    )
    version = make_model_version()
    version.metrics = {
        "ensemble": {
            "accuracy": 0.95,
            "macro_f1": 0.9412,
            "images": 650,
            "ci95": {"macro_f1": [0.921, 0.958], "accuracy": [0.93, 0.96]},
        }
    }
    version.review_threshold = 0.72
    version.save()
    first = make_image(patient, clinician, seed=3001, specimen=specimen, name="field-1.png")
    make_prediction(first, version=version, member_labels=["Pro"] * 5)
    second = make_image(patient, clinician, seed=3002, specimen=specimen, name="field-2.png")
    make_prediction(second, version=version, member_labels=["Pro", "Pro", "Pre", "Early", "Benign"])
    third = make_image(patient, clinician, seed=3003, specimen=specimen, name="field-3.png")
    make_prediction(third, version=version)
    services.verdict_record(image=first, user=clinician, kind="confirm")
    services.verdict_record(
        image=second, user=clinician, kind="reclassify", label="Pre", reason="Nuclear detail"
    )
    services.verdict_record(
        image=third, user=clinician, kind="not_assessable", reason="poor_quality"
    )
    specimen.refresh_from_db()
    return specimen


def sign(specimen, user, interpretation="Pre", comment="Consistent with pre-B ALL."):
    return services.specimen_sign_out(
        specimen=specimen, user=user, interpretation=interpretation, comment=comment
    )


# --- The PDF ----------------------------------------------------------------------------------


def test_a_draft_has_every_field_and_the_watermark(case, clinician):
    text = flat(pdf_text(services.draft_report_pdf(specimen=case, user=clinician).content))
    for expected in (
        clinician.memberships.first().lab.name,
        "Patient R-7",
        "MRN-REPORT-1",
        case.accession_number,
        "Lymphocytosis; rule out ALL.",
        "Peripheral blood",
        "DRAFT, not signed",
        "Research use only: not a diagnostic device.",
        "Confirmed Pro",
        "Reclassified to Pre",
        "Reason: Nuclear detail",
        "Not assessable",
        "Poor image quality",
        "Split vote",  # the second image's flag
        "5/5 unanimous",
        "macro-F1 0.941 (95% CI 0.921–0.958)",
        "650 images",
        "Review threshold 0.720",
        "Not signed out.",
    ):
        assert expected in text, expected
    assert "DEMO" not in text


def test_the_signed_pdf_is_stored_once_with_its_hash(case, clinician):
    sign_off = sign(case, clinician)
    report = CaseReport.objects.get(sign_off=sign_off)
    with default_storage.open(report.file.name, "rb") as handle:
        stored = handle.read()
    assert hashlib.sha256(stored).hexdigest() == report.sha256
    assert report.size == len(stored) and report.pages >= 1
    text = flat(pdf_text(stored))
    assert "DRAFT" not in text
    assert "Final report, version 1" in text
    assert "Pre-B ALL" in text and "Consistent with pre-B ALL." in text
    assert f"Signed by {clinician.get_full_name() or clinician.get_username()}" in text
    assert "Research use only: not a diagnostic device." in text
    rendered = AuditEvent.objects.get(specimen=case, event_type=EventType.REPORT_RENDERED)
    assert rendered.extra_data["new"]["sha256"] == report.sha256


def test_a_download_returns_the_signed_bytes_after_the_template_changes(
    case, clinician, settings, tmp_path
):
    report = CaseReport.objects.get(sign_off=sign(case, clinician))
    signed_bytes = services.case_report_bytes(report=report)
    # A later release changes the report template: new renders differ, the signed one not.
    changed = tmp_path / "cases"
    changed.mkdir()
    (changed / "report.html").write_text("<html><body><p>A new layout</p></body></html>")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    new_render = render_report_pdf(report_context(specimen=case)).content
    assert "A new layout" in pdf_text(new_render)
    again = services.case_report_bytes(report=services.signed_report(specimen=case))
    assert again == signed_bytes
    assert hashlib.sha256(again).hexdigest() == report.sha256


def test_a_tampered_report_is_refused_not_served(case, clinician):
    report = CaseReport.objects.get(sign_off=sign(case, clinician))
    default_storage.delete(report.file.name)
    default_storage.save(report.file.name, io.BytesIO(b"%PDF-1.7 something else"))
    with pytest.raises(services.ReportIntegrityError, match="checksum"):
        services.case_report_bytes(report=report)


def test_an_amendment_says_what_it_supersedes_and_why(case, clinician):
    sign(case, clinician)
    amended = services.specimen_amend(
        specimen=case,
        user=clinician,
        interpretation="Pro",
        comment="",
        reason="Flow cytometry showed CD10-negative blasts.",
    )
    first, second = CaseReport.objects.filter(sign_off__specimen=case).order_by("sign_off__version")
    assert second.sign_off == amended and first.sha256 != second.sha256
    text = flat(pdf_text(services.case_report_bytes(report=second)))
    assert "Amended report, version 2. It supersedes version 1." in text
    assert "Flow cytometry showed CD10-negative blasts." in text
    assert "Pro-B ALL" in text
    # The first version is still there, unchanged.
    assert "Final report, version 1" in flat(pdf_text(services.case_report_bytes(report=first)))


def test_every_page_names_the_demo_model_the_patient_and_the_case(clinician):
    patient = make_patient(clinician, "MRN-DEMO-9", "Patient D")
    specimen = default_specimen(patient, clinician)
    demo = make_model_version(is_demo=True)
    for seed in range(3010, 3016):
        image = make_image(patient, clinician, seed=seed, specimen=specimen)
        make_prediction(image, version=demo)
    reader = PdfReader(io.BytesIO(services.draft_report_pdf(specimen=specimen, user=None).content))
    assert len(reader.pages) >= 2
    for page in reader.pages:
        text = flat(page.extract_text())
        assert "DEMO MODEL" in text
        assert "DRAFT,notsigned" in text.replace(" ", "")  # rotated: spacing is approximate
        assert "Research use only: not a diagnostic device." in text
        # Who and which case on every page (the running footer).
        assert f"Patient D · record MRN-DEMO-9 · specimen {specimen.accession_number}" in text


def test_nothing_is_signed_when_the_report_cannot_be_rendered(case, clinician, monkeypatch):
    def broken(context):
        raise services.ReportRenderError("The PDF renderer is not installed.")

    monkeypatch.setattr("cases.services.reports.render_report_pdf", broken)
    with pytest.raises(services.ReportRenderError):
        sign(case, clinician)
    case.refresh_from_db()
    assert case.status != Specimen.Status.SIGNED_OUT
    assert not case.sign_offs.exists() and not CaseReport.objects.exists()


# --- FHIR -------------------------------------------------------------------------------------


def test_fhir_bundle_validates_round_trips_and_carries_the_case(case, clinician):
    report = CaseReport.objects.get(sign_off=sign(case, clinician))
    pdf = services.case_report_bytes(report=report)
    url = "https://portal.example/api/v1/specimens/1/report.pdf?version=1"
    bundle = specimen_bundle(report=report, pdf=pdf, pdf_url=url)
    raw = bundle.json()
    again = Bundle.parse_raw(raw)  # validates every resource again
    assert json.loads(again.json()) == json.loads(raw)

    resources = {}
    for entry in json.loads(raw)["entry"]:
        resources.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    (dr,) = resources["DiagnosticReport"]
    assert dr["status"] == "final"
    assert dr["conclusionCode"][0]["coding"][0]["code"] == "Pre"
    assert dr["conclusion"].startswith("Pre-B ALL")
    form = dr["presentedForm"][0]
    # The PDF by reference (it prints the record number), with what checks it.
    assert "data" not in form and form["url"] == url and form["contentType"] == "application/pdf"
    assert form["size"] == len(pdf) and report.sha256 in form["title"]
    assert base64.b64decode(form["hash"]) == hashlib.sha1(pdf).digest()  # noqa: S324
    (specimen,) = resources["Specimen"]
    assert specimen["accessionIdentifier"]["value"] == case.accession_number
    assert len(resources["Observation"]) == 3
    values = sorted(
        o.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code", "absent")
        for o in resources["Observation"]
    )
    assert values == ["Pre", "Pro", "absent"]
    split = next(
        o for o in resources["Observation"] if "Pre" in json.dumps(o.get("valueCodeableConcept"))
    )
    codes = [c["code"]["coding"][0]["code"] for c in split["component"]]
    assert {"model-label", "model-votes", "model-agreement", "review-flag"} <= set(codes)
    # The patient only by the pseudonymous label: no record number, no Patient resource.
    assert "Patient" not in resources
    assert "MRN-REPORT-1" not in raw
    assert dr["subject"]["identifier"]["value"] == "Patient R-7"


def test_fhir_names_the_subject_as_the_signed_pdf_does_after_the_patient_is_renamed(
    case, clinician
):
    report = CaseReport.objects.get(sign_off=sign(case, clinician))
    services.patient_update(patient=case.patient, user=clinician, data={"display_label": "Z-9"})
    pdf = services.case_report_bytes(report=report)
    raw = specimen_bundle(report=report, pdf=pdf, pdf_url="https://p.example/r.pdf").json()
    assert "Patient R-7" in raw and "Z-9" not in raw
    assert "Patient R-7" in flat(pdf_text(pdf))


def test_an_amended_report_is_amended_in_fhir(case, clinician):
    sign(case, clinician)
    amended = services.specimen_amend(
        specimen=case, user=clinician, interpretation="Pro", comment="", reason="Review"
    )
    report = CaseReport.objects.get(sign_off=amended)
    bundle = specimen_bundle(
        report=report, pdf=services.case_report_bytes(report=report), pdf_url="https://x/r.pdf"
    )
    dr = json.loads(bundle.json())["entry"][0]["resource"]
    assert dr["status"] == "amended" and "supersedes version 1" in dr["conclusion"]


# --- CSV --------------------------------------------------------------------------------------


def test_csv_cells_never_become_formulas_and_survive_commas_quotes_newlines(clinician):
    patient = make_patient(clinician, "MRN-CSV-1", "Patient C")
    specimen = default_specimen(patient, clinician)
    nasty = '=HYPERLINK("x"),\n"quoted".png'
    image = make_image(patient, clinician, seed=3020, specimen=specimen, name=nasty)
    make_prediction(image)
    lab = specimen.lab
    body = "".join(table.csv_lines(table.image_table_rows(table.image_table_queryset(lab=lab))))
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert tuple(rows[0]) == table.COLUMNS
    (row,) = [r for r in rows[1:] if r[2] == str(image.pk)]
    record = dict(zip(table.COLUMNS, row, strict=True))
    assert record["file_name"] == "'" + image.original_name  # the formula is text now
    assert "\n" in record["file_name"] and '"quoted"' in record["file_name"]
    assert record["model_label"] == "Pro" and record["votes"] == "4"
    assert record["accession_number"] == specimen.accession_number


def test_csv_rows_follow_the_date_range_and_the_lab(clinician, other_clinician):
    from datetime import timedelta

    from django.utils import timezone

    patient = make_patient(clinician, "MRN-CSV-2", "Patient D")
    specimen = default_specimen(patient, clinician)
    image = make_image(patient, clinician, seed=3021, specimen=specimen)
    other = make_patient(other_clinician, "MRN-CSV-3", "Other lab")
    make_image(other, other_clinician, seed=3022)
    today = timezone.localdate()

    def ids(**range_):
        qs = table.image_table_queryset(lab=specimen.lab, **range_)
        return [row[2] for row in table.image_table_rows(qs)]

    assert ids(start=today, end=today) == [image.pk]
    assert ids(start=today - timedelta(days=9), end=today - timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "must be a date"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "after"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "At most"),
    ],
)
def test_a_bad_date_range_says_what_to_fix(params, message):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=message):
        table.date_range(params)


def test_rendering_a_report_leaves_truncated_uploads_refused(case, clinician):
    """WeasyPrint turns on Pillow's LOAD_TRUNCATED_IMAGES at import, for the whole process."""
    from inference.decoding import decode_image
    from inference.exceptions import ImageDecodeError
    from tests.images import image_bytes

    services.draft_report_pdf(specimen=case, user=clinician)
    data = image_bytes("JPEG", seed=3030)
    with pytest.raises(ImageDecodeError, match="damaged or incomplete"):
        decode_image(data[: len(data) // 2])


def test_a_thumbnail_that_cannot_be_read_signs_nothing(case, clinician):
    """A signed PDF is for ever: it must not be stored with "image unavailable" in it."""
    image = case.images.order_by("id").first()
    default_storage.delete(image.thumbnail.name)
    default_storage.delete(image.file.name)  # nothing to remake the thumbnail from
    with pytest.raises(services.ReportRenderError, match=f"image #{image.pk}") as refused:
        sign(case, clinician)
    assert str(settings.MEDIA_ROOT) not in str(refused.value)  # no server paths on the page
    case.refresh_from_db()
    assert not case.is_signed and not CaseReport.objects.exists()
    # A draft still renders, and says so in the row.
    text = flat(pdf_text(services.draft_report_pdf(specimen=case, user=clinician).content))
    assert "Image file unavailable" in text


def test_a_storage_failure_signs_nothing_and_leaves_no_file(case, clinician, monkeypatch):
    written = []
    real_save = default_storage.save

    def failing_save(name, content, **kwargs):
        stored = real_save(name, io.BytesIO(b"%PDF-1.7 half"), **kwargs)
        written.append(stored)
        raise OSError("No space left on device")

    monkeypatch.setattr(default_storage, "save", failing_save)
    with pytest.raises(services.ReportRenderError, match="could not be stored"):
        sign(case, clinician)
    assert written and not default_storage.exists(written[0])
    assert not CaseReport.objects.exists() and not case.sign_offs.exists()


def stored_reports() -> list[str]:
    """Every stored report file (media is shared by a session's tests: compare before/after)."""
    try:
        dirs, _ = default_storage.listdir("reports")
    except FileNotFoundError:
        return []
    return sorted(f"{d}/{f}" for d in dirs for f in default_storage.listdir(f"reports/{d}")[1])


def test_a_failed_audit_of_the_report_signs_nothing_and_leaves_no_file(
    case, clinician, monkeypatch
):
    """The PDF (patient data) stayed in storage without its row when the REPORT_RENDERED audit
    insert failed after it was stored."""
    from cases.services import reports

    before = stored_reports()
    real_audit = reports.audit_event_create

    def audit(**kwargs):
        if kwargs["event_type"] == EventType.REPORT_RENDERED:
            raise DatabaseError("the audit table is full")
        return real_audit(**kwargs)

    monkeypatch.setattr(reports, "audit_event_create", audit)
    with pytest.raises((services.ReportRenderError, DatabaseError)) as failed:  # kind: below
        sign(case, clinician)
    assert stored_reports() == before
    assert not CaseReport.objects.exists() and not case.sign_offs.exists()
    # The page says "Nothing was signed" with this, as for a report that failed to store.
    assert isinstance(failed.value, services.ReportRenderError)
    assert "could not be stored" in str(failed.value)


@pytest.mark.django_db(transaction=True)
def test_a_sign_off_whose_commit_fails_leaves_no_report_file(case, clinician, monkeypatch):
    """The report was stored, then the commit failed (a serialization failure, a lost
    connection): the sign-off rolled back and its PDF stayed in storage."""
    before = stored_reports()
    connection = transaction.get_connection()

    def commit():
        monkeypatch.undo()
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(connection, "commit", commit)
    with pytest.raises(OperationalError):
        sign(case, clinician)
    assert stored_reports() == before
    assert not CaseReport.objects.exists() and not case.sign_offs.exists()


def test_a_report_filename_is_plain_ascii():
    from cases.models import Lab, Patient, SignOff

    specimen = Specimen(accession_number="ÄCC²/1 x", lab=Lab(name="L"), patient=Patient())
    report = CaseReport(sign_off=SignOff(specimen=specimen, version=2))
    assert report.filename == "report-_CC__1_x-v2.pdf"
