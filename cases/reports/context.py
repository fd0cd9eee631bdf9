"""What a case report shows, read once and shared by the print view and the PDF.

``report_context`` reads a specimen with its images (upload order), their latest predictions,
flags and verdicts, the case summary, the sign-off version being reported (or none: a draft)
and the figures of every model version that classified an image. Thumbnails are embedded as
``data:`` URIs, so the PDF renderer never fetches anything and the print view needs no extra
request (nor an audit row) per image.
"""

import base64
import io
import logging
from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from inference.models import ModelVersion

from ..flags import badges as flag_badges
from ..models import SignOff, SmearImage, Specimen, Verdict
from ..presentation import CLASS_NOTES, PredictionView
from ..selectors import images_with_review
from ..selectors.review import specimen_summary

log = logging.getLogger(__name__)

RESEARCH_USE = "Research use only: not a diagnostic device."
CLASSES = ("Benign", "Early", "Pre", "Pro")
OVERLAY_PX = 160  # the overlay's side in the PDF: 28 mm at about 150 dpi


@dataclass
class ReportRow:
    number: int  # 1..n, in upload order
    image: SmearImage
    thumbnail: str  # a data: URI, or "" when the stored thumbnail cannot be read
    overlay: str  # the ensemble's Grad-CAM overlay as a data: URI, or "" when there is none
    result: PredictionView | None
    flags: list
    verdict: Verdict | None

    @property
    def verified_label(self) -> str:
        return self.verdict.label if self.verdict and self.verdict.is_assessable else ""


@dataclass
class VersionFigures:
    version: ModelVersion
    images: int
    figures: dict = field(default_factory=dict)


def report_context(
    *,
    specimen: Specimen,
    sign_off: SignOff | None = None,
    user=None,
    strict: bool = False,
    thumbnails: bool = True,
) -> dict:
    """The template context of ``cases/report.html``.

    ``sign_off``: the signed version to report; ``None`` reports the current one of a signed
    specimen, and a draft (watermarked, not signed) of one not signed yet. ``strict``: a
    thumbnail that cannot be read raises ``ReportRenderError`` (a report about to be signed
    must not say "image unavailable" forever); otherwise its row says so. ``thumbnails=False``
    leaves them out (FHIR does not use them).
    """
    if sign_off is None and specimen.is_signed:
        sign_off = specimen.sign_offs.select_related("signed_by").order_by("-version").first()
    images = list(
        images_with_review()
        .prefetch_related("predictions__member_votes")
        .filter(specimen=specimen)
        .order_by("uploaded_at", "id")
    )
    rows = [
        _row(number, image, strict=strict, thumbnails=thumbnails)
        for number, image in enumerate(images, start=1)
    ]
    summary = specimen_summary(images=images)
    versions = _versions(rows)
    return {
        "specimen": specimen,
        "patient": specimen.patient,
        "lab": specimen.lab,
        "sign_off": sign_off,
        "draft": sign_off is None,
        "superseded_version": sign_off.version - 1 if sign_off and sign_off.is_amendment else None,
        "rows": rows,
        "summary": summary,
        "summary_rows": [
            (
                c,
                CLASS_NOTES[c],
                summary["model_labels"].get(c, 0),
                summary["verified_labels"].get(c, 0),
            )
            for c in CLASSES
        ],
        "versions": versions,
        "any_demo": any(v.version.is_demo for v in versions),
        "generated_at": sign_off.signed_at if sign_off else timezone.now(),
        "generated_by": user,
        "research_use": RESEARCH_USE,
    }


def _row(number: int, image: SmearImage, *, strict: bool, thumbnails: bool) -> ReportRow:
    predictions = image.predictions.all()
    prediction = predictions[0] if predictions else None
    return ReportRow(
        number=number,
        image=image,
        thumbnail=_thumbnail_uri(image, strict=strict) if thumbnails else "",
        overlay=_overlay_uri(prediction) if thumbnails and prediction else "",
        result=PredictionView.of(prediction) if prediction else None,
        flags=flag_badges(image.current_flags),
        verdict=image.current_verdict,
    )


def _thumbnail_uri(image: SmearImage, *, strict: bool) -> str:
    from ..services.uploads import image_thumbnail_ensure
    from .pdf import ReportRenderError

    try:
        name = image_thumbnail_ensure(image=image)
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
    except Exception as exc:  # a missing or unreadable file: the report says so in its row
        # The reason (with the server's file paths) goes to the log, not to the page.
        log.warning("Report: no thumbnail for image %s: %s", image.pk, exc)
        if strict:
            raise ReportRenderError(
                f"The file of image #{image.pk} cannot be read: it is missing or damaged "
                "(the server log says which). An administrator must restore it."
            ) from exc
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _overlay_uri(prediction) -> str:
    """The ensemble's Grad-CAM overlay, as a small JPEG (the PDF holds one per image)."""
    ensemble = next((m for m in prediction.saliency_maps.all() if m.is_ensemble), None)
    if ensemble is None:
        return ""
    try:
        with default_storage.open(ensemble.file.name, "rb") as handle:
            overlay = Image.open(handle)
            overlay.thumbnail((OVERLAY_PX, OVERLAY_PX))
            out = io.BytesIO()
            overlay.convert("RGB").save(out, format="JPEG", quality=85)
    except Exception as exc:  # noqa: BLE001 - the report says nothing rather than fail
        log.warning("Report: no Grad-CAM overlay for prediction %s: %s", prediction.pk, exc)
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _versions(rows: list[ReportRow]) -> list[VersionFigures]:
    """Every model version that labelled an image of the case, with its validated figures."""
    seen: dict[int, VersionFigures] = {}
    for row in rows:
        if row.result is None:
            continue
        version = row.result.prediction.model_version
        entry = seen.setdefault(version.pk, VersionFigures(version, 0, version.validated_figures()))
        entry.images += 1
    return sorted(seen.values(), key=lambda v: v.version.version)
