"""The case report as a PDF: WeasyPrint renders ``cases/report.html`` (the print view's
template) with ``static/css/report.css``.

WeasyPrint is imported when a report is rendered, not when the web process starts. It fetches
nothing: the report embeds its thumbnails as ``data:`` URIs, and any other address is refused,
so text typed into a specimen can never make the server fetch a URL. Fonts (DejaVu Sans from
Debian's ``fonts-dejavu-core``, installed by the set-up scripts) are embedded as subsets.
"""

import time
from dataclasses import dataclass

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

TEMPLATE = "cases/report.html"
STYLESHEET = "css/report.css"


class ReportRenderError(Exception):
    """The report could not be rendered; ``str(exc)`` says why."""


@dataclass(frozen=True)
class RenderedPdf:
    content: bytes
    pages: int
    seconds: float


def render_report_html(context: dict, *, for_pdf: bool) -> str:
    return render_to_string(TEMPLATE, {**context, "for_pdf": for_pdf})


def render_report_pdf(context: dict) -> RenderedPdf:
    """Render the report of ``context`` (``cases.reports.context.report_context``)."""
    try:
        from weasyprint import CSS, HTML
        from weasyprint.urls import URLFetcher
    except OSError as exc:  # Pango or its friends are missing from the machine
        raise ReportRenderError(
            f"WeasyPrint cannot load its system libraries ({exc}); run the README's set-up "
            "command, which installs them."
        ) from exc
    started = time.perf_counter()
    stylesheet = finders.find(STYLESHEET)
    if not stylesheet:
        raise ReportRenderError(f"The report stylesheet {STYLESHEET} is missing.")
    document = HTML(
        string=render_report_html(context, for_pdf=True),
        url_fetcher=URLFetcher(allowed_protocols={"data"}, fail_on_errors=True),
    ).render(stylesheets=[CSS(filename=stylesheet)])
    content = document.write_pdf()
    return RenderedPdf(
        content=content, pages=len(document.pages), seconds=time.perf_counter() - started
    )
