"""Signed case reports: rendered once when a version is signed, stored with their SHA-256, and
returned byte for byte on every later download (checked against that hash)."""

import hashlib
import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ..models import AuditEvent, CaseReport, SignOff, Specimen
from ..reports.context import report_context
from ..reports.pdf import RenderedPdf, ReportRenderError, render_report_pdf
from .audit import audit_event_create

log = logging.getLogger(__name__)
EventType = AuditEvent.EventType


class ReportIntegrityError(Exception):
    """A stored report is missing or no longer matches its SHA-256: it is not served."""


def case_report_store(
    *, sign_off: SignOff, user, address=None, written: list[str] | None = None
) -> CaseReport:
    """Render the PDF of ``sign_off`` and store it. Runs inside the sign-off's transaction: if
    rendering, storing or auditing fails, nothing is signed (``ReportRenderError``), and a file
    already written is removed. The stored name is added to ``written``: the caller removes it
    (``report_files_discard``) if its transaction does not commit."""
    specimen = sign_off.specimen
    try:
        rendered = render_report_pdf(
            report_context(specimen=specimen, sign_off=sign_off, user=user, strict=True)
        )
    except ReportRenderError:
        raise
    except Exception as exc:  # WeasyPrint's own errors: the sign-off must not half-happen
        log.exception("Case report of %s v%s failed to render", specimen, sign_off.version)
        raise ReportRenderError(
            f"The report could not be rendered ({type(exc).__name__}; the server log has the "
            "details)."
        ) from exc
    digest = hashlib.sha256(rendered.content).hexdigest()
    report = CaseReport(
        sign_off=sign_off,
        sha256=digest,
        size=len(rendered.content),
        subject_label=specimen.patient.display_label,  # as printed: exports keep it
    )
    name = report.file.field.generate_filename(report, "report.pdf")
    # Never reuse or overwrite: every signed version's bytes differ (its time of signing).
    if default_storage.exists(name):
        raise ReportRenderError(f"A report is already stored as {name}; nothing was signed.")
    try:
        stored = default_storage.save(name, ContentFile(rendered.content))
        if stored != name:
            default_storage.delete(stored)
            raise ReportRenderError(f"Storage renamed the report to {stored}.")
        if written is not None:
            written.append(name)
        report.file.name = name
        report.pages = rendered.pages
        report.render_seconds = rendered.seconds
        report.save()
        _audit_rendered(report, rendered, user=user, address=address)
    except Exception as exc:
        if default_storage.exists(name):  # also a file half-written when the disk filled up
            default_storage.delete(name)
        if isinstance(exc, ReportRenderError):
            raise
        log.exception("Case report of %s v%s could not be stored", specimen, sign_off.version)
        raise ReportRenderError(
            f"The report could not be stored ({type(exc).__name__}; the server log has the "
            "details)."
        ) from exc
    return report


def report_files_discard(names: list[str]) -> None:
    """Remove report files whose sign-off did not commit (it rolled back, or its commit
    failed): a PDF with patient data and no row. A file a committed row names is kept, and so
    is one when that cannot be checked (the database is gone): an orphan, never a lost report."""
    for name in names:
        try:
            if not CaseReport.objects.filter(file=name).exists():
                default_storage.delete(name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            log.exception("Report file %s of a sign-off that did not commit is left", name)


def _audit_rendered(report: CaseReport, rendered: RenderedPdf, *, user, address) -> None:
    audit_event_create(
        event_type=EventType.REPORT_RENDERED,
        acting_user=user,
        address=address,
        specimen=report.sign_off.specimen,
        new={
            "version": report.sign_off.version,
            "sha256": report.sha256,
            "bytes": report.size,
            "pages": rendered.pages,
            "seconds": round(rendered.seconds, 3),
        },
    )


def case_report_bytes(*, report: CaseReport) -> bytes:
    """The stored PDF, verified against its SHA-256."""
    try:
        with default_storage.open(report.file.name, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        log.error("Case report %s: file %s unreadable: %s", report.pk, report.file.name, exc)
        raise ReportIntegrityError(
            "The stored report file is missing; an administrator must restore it from backup."
        ) from exc
    if hashlib.sha256(content).hexdigest() != report.sha256:
        log.error("Case report %s: %s does not match its SHA-256", report.pk, report.file.name)
        raise ReportIntegrityError(
            "The stored report no longer matches the checksum recorded when it was signed; it "
            "is not served. An administrator must restore it from backup."
        )
    return content


def signed_report(*, specimen: Specimen, version: int | None = None) -> CaseReport | None:
    """The stored report of ``version`` (default: the latest signed one), or ``None``."""
    qs = CaseReport.objects.select_related("sign_off__specimen", "sign_off__signed_by").filter(
        sign_off__specimen=specimen
    )
    if version is not None:
        qs = qs.filter(sign_off__version=version)
    return qs.order_by("-sign_off__version").first()


def draft_report_pdf(*, specimen: Specimen, user) -> RenderedPdf:
    """A PDF of the specimen as it stands now, watermarked as a draft when not signed. Not
    stored: only signing stores a report."""
    return render_report_pdf(report_context(specimen=specimen, user=user))


__all__ = [
    "ReportIntegrityError",
    "ReportRenderError",
    "case_report_bytes",
    "case_report_store",
    "draft_report_pdf",
    "report_files_discard",
    "signed_report",
]
