"""The signed case report: the PDF of one sign-off version, rendered once when it was signed.

The bytes never change afterwards: a template or code change renders new reports differently,
but a download of an earlier one returns exactly what was signed (its SHA-256 is kept here and
checked on every download).
"""

from django.db import models

from .base import AppendOnlyModel
from .review import SignOff


def report_upload_to(instance: "CaseReport", filename: str) -> str:
    return f"reports/{instance.sha256[:2]}/{instance.sha256}.pdf"


class CaseReport(AppendOnlyModel):
    sign_off = models.OneToOneField(SignOff, on_delete=models.PROTECT, related_name="report")
    file = models.FileField(upload_to=report_upload_to, max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField(help_text="Bytes")
    pages = models.PositiveSmallIntegerField()
    render_seconds = models.FloatField(help_text="How long WeasyPrint took to render it.")
    subject_label = models.CharField(
        max_length=80,
        blank=True,
        help_text="The patient's label as the report printed it. Exports of this version "
        "(FHIR) name the subject so even after the patient record is edited; empty for reports "
        "stored before it was recorded.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Report of {self.sign_off}"

    @property
    def filename(self) -> str:
        """What a download is called: ``<accession>-v<version>.pdf`` (no patient data)."""
        specimen = self.sign_off.specimen
        safe = "".join(
            c if (c.isascii() and c.isalnum()) or c in "-_." else "_"
            for c in specimen.accession_number
        )
        return f"report-{safe}-v{self.sign_off.version}.pdf"
