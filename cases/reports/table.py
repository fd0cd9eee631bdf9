"""The lab's images as CSV, for quality assurance in a spreadsheet.

Rows are streamed: the query is read in chunks (``iterator(chunk_size=…)``, with its prefetches
done per chunk) and each line is written as soon as it is made, so a year of images never sits
in memory. Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) get a leading apostrophe (OWASP's CSV injection
advice); numbers are left alone. The file starts with a UTF-8 byte order mark, so Excel reads
accents correctly.
"""

import csv
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from ..models import ImageFlag, Lab, Prediction, SignOff, SmearImage, Specimen, Verdict

CHUNK = 500
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "accession_number",
    "specimen_status",
    "image_id",
    "file_name",
    "uploaded_at",
    "image_status",
    "model_version",
    "model_label",
    "out_of_domain",
    "ood_score",
    "votes",
    "members",
    "agreement",
    "top_probability",
    "flags",
    "verdict",
    "verified_label",
    "reviewer_role",
    "verdict_at",
    "signed_interpretation",
    "sign_off_version",
)


def date_range(params: Mapping) -> tuple[date, date]:
    """``from`` and ``to`` (``YYYY-MM-DD``, both optional) of a request: by default the last 30
    days up to today. Raises ``ValidationError`` with a message a person can act on."""
    today = timezone.localdate()
    parsed = {}
    for key, default in (("to", today), ("from", None)):
        raw = (params.get(key) or "").strip()
        try:
            parsed[key] = date.fromisoformat(raw) if raw else default
        except ValueError:
            raise ValidationError(
                f"'{key}' must be a date as YYYY-MM-DD, not {raw[:20]!r}.", code="invalid_date"
            ) from None
    end = parsed["to"]
    try:
        start = parsed["from"] or end - timedelta(days=30)
    except OverflowError:
        raise ValidationError(
            "'to' is too early; give 'from' as well.", code="invalid_date"
        ) from None
    if start > end:
        raise ValidationError("'from' is after 'to'.", code="invalid_range")
    if (end - start).days + 1 > settings.LP_CSV_MAX_DAYS:
        raise ValidationError(
            f"At most {settings.LP_CSV_MAX_DAYS} days per export; export a year at a time.",
            code="range_too_long",
        )
    return start, end


def image_table_queryset(
    *,
    lab: Lab,
    start: date | None = None,
    end: date | None = None,
    specimen: Specimen | None = None,
) -> QuerySet[SmearImage]:
    """The lab's images (of one ``specimen``, if given) uploaded from ``start`` to ``end``
    (inclusive, in the portal's time zone), oldest first, with what a row needs."""
    latest = SignOff.objects.filter(specimen=OuterRef("specimen")).order_by("-version")
    qs = SmearImage.objects.filter(specimen__lab=lab)
    if start is not None:
        qs = qs.filter(uploaded_at__date__gte=start)
    if end is not None:
        qs = qs.filter(uploaded_at__date__lte=end)
    qs = (
        qs.select_related("specimen")
        .annotate(
            signed_interpretation=Subquery(latest.values("interpretation")[:1]),
            sign_off_version=Subquery(latest.values("version")[:1]),
        )
        .prefetch_related(
            Prefetch(
                "predictions",
                queryset=Prediction.objects.select_related("model_version").order_by(
                    "-created_at", "-id"
                ),
            ),
            Prefetch(
                "flags", queryset=ImageFlag.objects.filter(active=True), to_attr="active_flags"
            ),
            Prefetch(
                "verdicts", queryset=Verdict.objects.order_by("-id"), to_attr="verdict_history"
            ),
        )
        .order_by("uploaded_at", "id")
    )
    return qs.filter(specimen=specimen) if specimen is not None else qs


def image_table_rows(queryset: QuerySet[SmearImage]) -> Iterator[list]:
    for image in queryset.iterator(chunk_size=CHUNK):
        predictions = image.predictions.all()
        p = predictions[0] if predictions else None
        verdict = image.current_verdict
        yield [
            image.specimen.accession_number,
            image.specimen.status,
            image.pk,
            image.original_name,
            timezone.localtime(image.uploaded_at).isoformat(timespec="seconds"),
            image.status,
            p.model_version.label if p else "",
            p.shown_label or "" if p else "",
            ("yes" if p.out_of_domain else "no") if p else "",
            round(p.ood_score, 4) if p and p.ood_score is not None else "",
            p.votes if p else "",
            p.member_count if p else "",
            p.agreement if p else "",
            round(max(p.probabilities.values()), 4) if p and p.probabilities else "",
            ";".join(f.reason for f in image.current_flags),
            verdict.kind if verdict else "",
            verdict.label if verdict and verdict.is_assessable else "",
            verdict.reviewer_role if verdict else "",
            timezone.localtime(verdict.created_at).isoformat(timespec="seconds") if verdict else "",
            image.signed_interpretation or "",
            image.sign_off_version or "",
        ]


def spreadsheet_safe(value):
    """A text cell that cannot run as a formula; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Line:
    """A file-like object whose ``write`` returns the line (Django's streaming CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(COLUMNS)
    for row in rows:
        yield writer.writerow([spreadsheet_safe(v) for v in row])
