"""Reports through the API: the signed PDF, the FHIR R4 bundle, the image CSV. For the lab's
own members only (``Capability.REPORT``); every answer is audited."""

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from .. import selectors, services
from ..models import AuditEvent
from ..reports.fhir import CONTENT_TYPE as FHIR_JSON
from ..reports.fhir import specimen_bundle
from ..reports.http import (
    csv_response,
    image_csv_for,
    pdf_response,
    report_pdf_for,
    stored_report,
)
from ..roles import Capability, require
from .common import FORBIDDEN, NOT_FOUND, REFUSED, VALIDATION_ERROR, ServiceErrorsMixin

EventType = AuditEvent.EventType
SERVER_ERROR = OpenApiResponse(
    description="The stored report is missing or no longer matches its SHA-256 "
    '(`{"detail": "…"}`): nothing is served.'
)


class FileNegotiation(DefaultContentNegotiation):
    # These endpoints answer a file (PDF, FHIR JSON, CSV) whatever the Accept header asks for;
    # their errors are JSON. Without this, "Accept: application/pdf" would be a 406.

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class SpecimenReportPdfApi(ServiceErrorsMixin, APIView):
    content_negotiation_class = FileNegotiation

    @extend_schema(
        summary="Download the specimen's signed PDF report",
        tags=["reports"],
        description="The PDF stored when the version was signed, byte for byte (its SHA-256 "
        "is checked first); `?version=N` for an earlier version. For a specimen not signed "
        "yet: a draft rendered now, watermarked “DRAFT, not signed”, and not stored. Members "
        "of the lab only.",
        parameters=[OpenApiParameter("version", int, required=False)],
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            403: FORBIDDEN,
            404: NOT_FOUND,
            500: SERVER_ERROR,
        },
    )
    def get(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        require(request.user, specimen.lab_id, Capability.REPORT)
        content, filename = report_pdf_for(request, specimen, request.query_params.get("version"))
        return pdf_response(content, filename)


class SpecimenFhirApi(ServiceErrorsMixin, APIView):
    content_negotiation_class = FileNegotiation

    @extend_schema(
        summary="The signed specimen as a FHIR R4 Bundle",
        tags=["reports"],
        description="A `collection` Bundle (FHIR 4.0.1) of a `DiagnosticReport` (status "
        "`final`, or `amended` from version 2; conclusion and conclusionCode = the signed "
        "interpretation; presentedForm = the stored PDF by URL, with its size and SHA-1 hash: "
        "the PDF prints the record number, which the bundle itself never carries), one "
        "`Observation` per image (the verified class; the model's label, votes, agreement, "
        "probabilities and flags as components), the `Specimen` (accession number, collection "
        "date) and a `Device` per model version. The patient is referenced by the "
        "pseudonymous label only. Validated with `fhir.resources` before it is sent. "
        "`?version=N` for an earlier version. 409 while the specimen is not signed. Members "
        "of the lab only.",
        parameters=[OpenApiParameter("version", int, required=False)],
        responses={
            (200, FHIR_JSON): OpenApiTypes.OBJECT,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: REFUSED,
            500: SERVER_ERROR,
        },
    )
    def get(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        require(request.user, specimen.lab_id, Capability.REPORT)
        if not specimen.is_signed:
            raise services.ActionRefused(
                "The specimen is not signed out: FHIR is sent for signed reports only."
            )
        report = stored_report(specimen, request.query_params.get("version"))
        if report is None:
            raise services.ActionRefused(
                "No stored report for this version (signed before reports were stored)."
            )
        pdf_url = request.build_absolute_uri(
            reverse("api:specimen-report-pdf", args=[specimen.pk])
            + f"?version={report.sign_off.version}"
        )
        bundle = specimen_bundle(
            report=report, pdf=services.case_report_bytes(report=report), pdf_url=pdf_url
        )
        services.audit_read(
            request=request,
            event_type=EventType.FHIR_EXPORTED,
            specimen=specimen,
            extra={"version": report.sign_off.version, "sha256": report.sha256},
        )
        response = HttpResponse(bundle.json(), content_type=FHIR_JSON)
        response["Cache-Control"] = "private, no-store"
        return response


class LabImagesCsvApi(ServiceErrorsMixin, APIView):
    content_negotiation_class = FileNegotiation

    @extend_schema(
        summary="The lab's images as CSV",
        tags=["reports"],
        description="One row per image uploaded from `from` to `to` (YYYY-MM-DD, inclusive; "
        "default the last 30 days; at most `LP_CSV_MAX_DAYS`), or every image of one "
        "`specimen`: accession, image, model version, label, votes, agreement, top probability, "
        "flags, verdict, verified label, reviewer role, signed interpretation. Streamed. Text "
        "that a spreadsheet would run as a formula starts with an apostrophe. Members of the "
        "lab only.",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, required=False),
            OpenApiParameter("to", OpenApiTypes.DATE, required=False),
            OpenApiParameter("specimen", int, required=False),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, pk):
        lab = selectors.lab_get(user=request.user, pk=pk)
        require(request.user, lab.pk, Capability.REPORT)
        queryset, filename, _ = image_csv_for(request, lab)
        return csv_response(queryset, filename)
