"""HTTP shared by the report pages and the API: which PDF or CSV a request asks for (checked
and audited), and the responses that carry them."""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, StreamingHttpResponse

from .. import selectors, services
from ..models import AuditEvent
from .table import csv_lines, date_range, image_table_queryset, image_table_rows

EventType = AuditEvent.EventType


def pdf_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Length"] = str(len(content))
    response["Cache-Control"] = "private, no-store"
    return response


def csv_response(queryset, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(image_table_rows(queryset)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def csv_filename(lab, start=None, end=None, specimen=None) -> str:
    if specimen is not None:
        return f"images-specimen-{specimen.pk}.csv"
    return f"images-lab-{lab.pk}-{start.isoformat()}-to-{end.isoformat()}.csv"


def requested_version(raw: str | None) -> int | None:
    """``?version=N`` of a request: ``None`` when absent; ``Http404`` when not a number."""
    if raw in (None, ""):
        return None
    if not (str(raw).isascii() and str(raw).isdigit()):
        raise Http404("No such report version.")
    return int(raw)


def stored_report(specimen, raw_version: str | None):
    """The stored report a request asks for: ``?version=N``, else the latest; ``None`` when
    no version is asked and none is stored. ``Http404`` for a version that does not exist."""
    version = requested_version(raw_version)
    report = services.signed_report(specimen=specimen, version=version)
    if report is None and version is not None:
        raise Http404("No such report version.")
    return report


def report_pdf_for(request, specimen, raw_version: str | None) -> tuple[bytes, str]:
    """``(pdf, filename)`` for the page and the API alike, audited. Raises ``Http404`` for a
    version that does not exist."""
    if specimen.is_signed or raw_version not in (None, ""):
        report = stored_report(specimen, raw_version)
        if report is None:  # signed before reports were stored
            raise Http404("No such report version.")
        content = services.case_report_bytes(report=report)
        services.audit_read(
            request=request,
            event_type=EventType.REPORT_DOWNLOADED,
            specimen=specimen,
            extra={"version": report.sign_off.version, "sha256": report.sha256},
        )
        return content, report.filename
    rendered = services.draft_report_pdf(specimen=specimen, user=request.user)
    services.audit_read(
        request=request,
        event_type=EventType.REPORT_VIEWED,
        specimen=specimen,
        extra={"form": "draft pdf"},
    )
    return rendered.content, f"draft-{specimen.pk}.pdf"


def image_csv_for(request, lab):
    """``(queryset, filename, scope)`` of a CSV request, audited. Raises ``ValidationError``
    for a bad date range and ``Http404`` for a specimen outside the lab."""
    specimen_id = request.GET.get("specimen")
    if specimen_id:
        if not (specimen_id.isascii() and specimen_id.isdigit()):
            raise ValidationError("'specimen' must be a specimen id.")
        specimen = selectors.specimen_get(user=request.user, pk=int(specimen_id))
        if specimen.lab_id != lab.pk:
            raise Http404("No such specimen in this lab.")
        start = end = None
        scope = {"specimen": specimen.pk}
    else:
        specimen = None
        start, end = date_range(request.GET)
        scope = {"from": start.isoformat(), "to": end.isoformat()}
    services.audit_read(
        request=request, event_type=EventType.CSV_EXPORTED, lab=lab, specimen=specimen, extra=scope
    )
    queryset = image_table_queryset(lab=lab, start=start, end=end, specimen=specimen)
    return queryset, csv_filename(lab, start, end, specimen), scope
