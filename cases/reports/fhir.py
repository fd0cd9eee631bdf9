"""A signed specimen as FHIR R4 (4.0.1), for the laboratory information system.

One ``Bundle`` (type ``collection``) holds the ``DiagnosticReport`` (status ``final``, or
``amended`` from version 2; its conclusion is the signed interpretation; ``presentedForm``
refers to the stored PDF by URL, with its size and hash), one ``Observation`` per image (the
verified class as its value, the model's label, votes, agreement, probabilities and flags as
components), the ``Specimen`` (accession number,
collection date, type) and a ``Device`` per model version. The patient is referenced by the
pseudonymous label only: no ``Patient`` resource and no record number leave in it. The PDF,
which a laboratory files and which therefore prints the record number, is not embedded: the LIS
fetches it from ``presentedForm.url`` with its own credentials (lab members only, audited) and
can check it against ``hash`` and ``size``. The LIS matches the report by the specimen's
accession number, which is its own key.

Every resource is built with ``fhir.resources`` (pinned to 6.1.0, the last release whose
models are R4 4.0.1; later releases model R4B and R5), whose pydantic models validate types,
cardinalities and required elements on construction. Ids are UUID 5 of stable names, so
exporting the same version twice gives the same ids. Code systems are the portal's own, under
``settings.LP_FHIR_SYSTEM`` (README, "FHIR"); only the category (HL7 v2-0074 ``HM``) and the
data-absent reasons are HL7's.
"""

import base64
import hashlib
import uuid

from django.conf import settings
from fhir.resources.bundle import Bundle

from ..models import CaseReport, SignOff, Verdict
from ..presentation import CLASS_NAMES
from .context import CLASSES, ReportRow, report_context

FHIR_VERSION = "4.0.1"
CONTENT_TYPE = "application/fhir+json"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
UCUM = "http://unitsofmeasure.org"
INTERPRETATIONS = dict(SignOff.Interpretation.choices)


def system(*parts) -> str:
    """A code or identifier system under the configured base (a URN or an http(s) URL)."""
    base = settings.LP_FHIR_SYSTEM.rstrip("/:")
    sep = ":" if base.startswith("urn:") else "/"
    return sep.join([base, *map(str, parts)])


def _uuid(*parts) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, system(*parts)))


def _coding(code_system: str, code: str, display: str = "") -> dict:
    coding = {"system": code_system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def _class(label: str) -> dict:
    return _coding(system("CodeSystem", "all-class"), label, CLASS_NAMES.get(label, label))


def specimen_bundle(*, report: CaseReport, pdf: bytes, pdf_url: str) -> Bundle:
    """The FHIR bundle of the signed version ``report``: ``pdf`` is its stored, verified bytes
    (for the attachment's size and hash), ``pdf_url`` the absolute address it is served at."""
    sign_off = report.sign_off
    specimen = sign_off.specimen
    context = report_context(specimen=specimen, sign_off=sign_off, thumbnails=False)
    lab = specimen.lab
    ids = {
        "report": _uuid("lab", lab.pk, "report", specimen.accession_number, sign_off.version),
        "specimen": _uuid("lab", lab.pk, "specimen", specimen.accession_number),
    }
    # The subject as the signed PDF names it, not as the patient record reads today.
    label = report.subject_label or specimen.patient.display_label
    subject = {
        "identifier": {"system": system("lab", lab.pk, "patient-label"), "value": label},
        "display": label,
    }
    devices = {
        v.version.pk: (_uuid("model-version", v.version.version), v.version)
        for v in context["versions"]
    }
    observations = [
        (_uuid("lab", lab.pk, "image", row.image.pk, "v", sign_off.version), row)
        for row in context["rows"]
    ]
    entries = [
        _entry(ids["report"], _diagnostic_report(report, pdf, pdf_url, subject, ids, observations)),
        _entry(ids["specimen"], _specimen(specimen, subject)),
        *(
            _entry(oid, _observation(row, subject, ids["specimen"], devices))
            for oid, row in observations
        ),
        *(_entry(did, _device(version)) for did, version in devices.values()),
    ]
    return Bundle.parse_obj(
        {
            "resourceType": "Bundle",
            "id": ids["report"],
            "meta": {"lastUpdated": sign_off.signed_at.isoformat()},
            "identifier": {
                "system": system("lab", lab.pk, "report"),
                "value": f"{specimen.accession_number}-v{sign_off.version}",
            },
            "type": "collection",
            "timestamp": sign_off.signed_at.isoformat(),
            "entry": entries,
        }
    )


def _entry(resource_id: str, resource: dict) -> dict:
    return {"fullUrl": f"urn:uuid:{resource_id}", "resource": {"id": resource_id, **resource}}


def _diagnostic_report(report, pdf, pdf_url, subject, ids, observations) -> dict:
    sign_off = report.sign_off
    specimen = sign_off.specimen
    signer = sign_off.signed_by
    conclusion = INTERPRETATIONS[sign_off.interpretation]
    if sign_off.comment:
        conclusion += f". {sign_off.comment}"
    if sign_off.is_amendment:
        conclusion += (
            f" (Amended: supersedes version {sign_off.version - 1}. "
            f"Reason: {sign_off.amendment_reason})"
        )
    resource = {
        "resourceType": "DiagnosticReport",
        "identifier": [
            {
                "system": system("lab", specimen.lab_id, "report"),
                "value": f"{specimen.accession_number}-v{sign_off.version}",
            }
        ],
        "status": "amended" if sign_off.is_amendment else "final",
        "category": [_coding(V2_0074, "HM", "Hematology")],
        "code": _coding(
            system("CodeSystem", "report"),
            "all-smear-review",
            "Peripheral blood smear review for acute lymphoblastic leukemia",
        ),
        "subject": subject,
        "issued": sign_off.signed_at.isoformat(),
        "performer": [{"display": specimen.lab.name}],
        "resultsInterpreter": [{"display": signer.get_full_name() or signer.get_username()}],
        "specimen": [{"reference": f"urn:uuid:{ids['specimen']}"}],
        "result": [{"reference": f"urn:uuid:{oid}"} for oid, _ in observations],
        "conclusion": conclusion,
        "conclusionCode": [
            _coding(
                system("CodeSystem", "all-interpretation"),
                sign_off.interpretation,
                INTERPRETATIONS[sign_off.interpretation],
            )
        ],
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "language": "en",
                "url": pdf_url,
                "size": len(pdf),
                # FHIR's Attachment.hash is the base64 SHA-1; the SHA-256 is in the title.
                "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),  # noqa: S324
                "title": f"{report.filename} (SHA-256 {report.sha256})",
                "creation": sign_off.signed_at.isoformat(),
            }
        ],
    }
    if specimen.collection_date:
        resource["effectiveDateTime"] = specimen.collection_date.isoformat()
    return resource


def _specimen(specimen, subject) -> dict:
    resource = {
        "resourceType": "Specimen",
        "accessionIdentifier": {
            "system": system("lab", specimen.lab_id, "accession"),
            "value": specimen.accession_number,
        },
        "type": _coding(
            system("CodeSystem", "specimen-type"),
            specimen.specimen_type,
            specimen.get_specimen_type_display(),
        ),
        "subject": subject,
        "receivedTime": specimen.created_at.isoformat(),
    }
    if specimen.collection_date:
        resource["collection"] = {"collectedDateTime": specimen.collection_date.isoformat()}
    if specimen.clinical_question:
        resource["note"] = [{"text": f"Clinical question: {specimen.clinical_question}"}]
    return resource


def _observation(row: ReportRow, subject, specimen_id, devices) -> dict:
    image, verdict = row.image, row.verdict
    resource = {
        "resourceType": "Observation",
        "identifier": [{"system": system("image"), "value": f"{image.pk}:{image.sha256}"}],
        "status": "cancelled" if verdict and verdict.kind == Verdict.Kind.EXCLUDED else "final",
        "category": [_coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")],
        "code": _coding(
            system("CodeSystem", "observation"),
            "smear-image-class",
            "ALL subtype of one smear image, verified by a person",
        ),
        "subject": subject,
        "specimen": {"reference": f"urn:uuid:{specimen_id}"},
        "component": _model_components(row) + _flag_components(row),
    }
    if verdict is not None:
        resource["issued"] = verdict.created_at.isoformat()
        reviewer = verdict.reviewer.get_full_name() or verdict.reviewer.get_username()
        role = verdict.get_reviewer_role_display().lower() if verdict.reviewer_role else ""
        resource["performer"] = [{"display": f"{reviewer} ({role})" if role else reviewer}]
        notes = [verdict.get_kind_display()]
        notes += [f"Reason: {verdict.reason_text}"] if verdict.reason_text else []
        notes += [verdict.comment] if verdict.comment else []
        resource["note"] = [{"text": ". ".join(notes)}]
    if row.verified_label:
        resource["valueCodeableConcept"] = _class(row.verified_label)
    else:
        not_assessable = verdict is not None and verdict.kind == Verdict.Kind.NOT_ASSESSABLE
        absent = "unknown" if not_assessable else "not-performed"
        text = verdict.get_kind_display() if verdict else "No verdict"
        if verdict and verdict.reason_text:
            text += f": {verdict.reason_text}"
        resource["dataAbsentReason"] = _coding(DATA_ABSENT, absent, text)
    if row.result is not None:
        device_id, _ = devices[row.result.prediction.model_version_id]
        resource["device"] = {"reference": f"urn:uuid:{device_id}"}
    return resource


def _component(code: str, display: str, **value) -> dict:
    return {"code": _coding(system("CodeSystem", "observation"), code, display), **value}


def _model_components(row: ReportRow) -> list[dict]:
    if row.result is None:
        return []
    p = row.result.prediction
    if p.out_of_domain:
        components = [
            _component(
                "model-out-of-domain",
                "Outside the model's domain: not classified (the members' votes are unreliable)",
                valueBoolean=True,
            )
        ]
    else:
        components = [
            _component(
                "model-label",
                "The model's label (majority vote)",
                valueCodeableConcept=_class(p.label),
            )
        ]
    if p.ood_score is not None:
        components.append(
            _component(
                "model-ood-score",
                "Out-of-domain score (1 is the detector's threshold)",
                valueQuantity={"value": round(float(p.ood_score), 4), "unit": "1"},
            )
        )
    components += [
        _component("model-votes", "Members that voted for the label", valueInteger=p.votes),
        _component("model-members", "Members in the ensemble", valueInteger=p.member_count),
        _component("model-agreement", "Agreement of the members", valueString=p.agreement),
    ]
    for label in CLASSES:
        if label in p.probabilities:
            components.append(
                _component(
                    f"model-probability-{label.lower()}",
                    f"Mean member probability of {label}",
                    valueQuantity={
                        "value": round(float(p.probabilities[label]), 4),
                        "system": UCUM,
                        "code": "1",
                        "unit": "probability",
                    },
                )
            )
    return components


def _flag_components(row: ReportRow) -> list[dict]:
    return [
        _component(
            "review-flag",
            "Reason the image was flagged for review",
            valueCodeableConcept={
                "coding": [
                    {
                        "system": system("CodeSystem", "review-flag"),
                        "code": reason.code,
                        "display": reason.label,
                    }
                ],
                "text": f"{reason.label}: {detail}" if detail else reason.label,
            },
        )
        for reason, detail in row.flags
    ]


def _device(version) -> dict:
    note = "Research use only: not a diagnostic device."
    if version.is_demo:
        note += " DEMO model trained on synthetic images: its labels are not predictions."
    return {
        "resourceType": "Device",
        "identifier": [{"system": system("model-version"), "value": str(version.version)}],
        "deviceName": [{"name": f"Leukemia Portal {version.name}", "type": "model-name"}],
        "type": {"text": "Image classification ensemble: " + ", ".join(version.member_names)},
        "version": [{"value": str(version.version)}],
        "note": [{"text": note}],
    }
