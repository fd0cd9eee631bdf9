"""Reports that leave the portal, from the pages: the print view, the PDF, the image CSV.

All of them are for the lab's own members (``Capability.REPORT``) and every one is audited.
"""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.views import View

from .. import selectors, services
from ..models import AuditEvent
from ..reports.context import report_context
from ..reports.http import csv_response, image_csv_for, pdf_response, report_pdf_for
from ..reports.pdf import render_report_html
from ..roles import Capability, require
from .common import refuse

EventType = AuditEvent.EventType


class SpecimenReportView(LoginRequiredMixin, View):
    """GET: the report as a page to print (the PDF's template, with a print stylesheet)."""

    def get(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        require(request.user, specimen.lab_id, Capability.REPORT)
        services.audit_read(
            request=request,
            event_type=EventType.REPORT_VIEWED,
            specimen=specimen,
            extra={"form": "print view"},
        )
        context = report_context(specimen=specimen, user=request.user)
        return HttpResponse(render_report_html(context, for_pdf=False))


class SpecimenReportPdfView(LoginRequiredMixin, View):
    """GET: the signed PDF, exactly as stored at signing (``?version=N`` for an earlier one);
    for a specimen not signed yet, a draft rendered now (watermarked, not stored)."""

    def get(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        require(request.user, specimen.lab_id, Capability.REPORT)
        try:
            content, filename = report_pdf_for(request, specimen, request.GET.get("version"))
        except (services.ReportIntegrityError, services.ReportRenderError) as exc:
            return refuse(request, str(exc), status=500)
        return pdf_response(content, filename)


class LabImagesCsvView(LoginRequiredMixin, View):
    """GET: the lab's images as CSV, ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (default: the last 30
    days), or ``?specimen=ID`` for every image of one specimen."""

    def get(self, request, pk):
        lab = selectors.lab_get(user=request.user, pk=pk)
        require(request.user, lab.pk, Capability.REPORT)
        try:
            queryset, filename, scope = image_csv_for(request, lab)
        except ValidationError as exc:
            return refuse(request, " ".join(exc.messages), status=400)
        return csv_response(queryset, filename)


__all__ = ["LabImagesCsvView", "SpecimenReportPdfView", "SpecimenReportView"]
