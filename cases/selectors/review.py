"""Reads for human review: the queue, what a specimen still needs, and its case summary."""

from collections import Counter

from django.db.models import Exists, Max, OuterRef, QuerySet

from ..flags import reason as flag_reason
from ..models import ImageFlag, SmearImage, Specimen, Verdict
from ..roles import Capability, lab_ids

Status = SmearImage.Status


def _has_verdict():
    return Exists(Verdict.objects.filter(image=OuterRef("pk")))


def _has_flag(reason: str = ""):
    flags = ImageFlag.objects.filter(image=OuterRef("pk"), active=True)
    return Exists(flags.filter(reason=reason) if reason else flags)


def review_queue(*, user, reason: str = "", specimen_id: int | None = None) -> QuerySet:
    """Every finished image of the user's labs that awaits a verdict, in specimens not signed
    out: flagged ones first, then oldest first. Only labs where the user may verify."""
    from . import image_list

    qs = (
        image_list(user=user)
        .filter(status__in=(Status.DONE, Status.FAILED))
        .exclude(specimen__status__in=Specimen.SIGNED)
        .annotate(has_verdict=_has_verdict(), flagged=_has_flag())
        .filter(has_verdict=False)
    )
    ids = lab_ids(user, Capability.VERIFY)
    if ids is not None:
        qs = qs.filter(patient__lab__in=ids)
    if reason:
        qs = qs.filter(_has_flag(reason))
    if specimen_id:
        qs = qs.filter(specimen_id=specimen_id)
    return qs.order_by("-flagged", "uploaded_at", "id")


def review_counts(*, user) -> dict:
    """For the navigation bar: images awaiting a verdict, and how many of them are flagged."""
    qs = review_queue(user=user).order_by()
    return {"awaiting": qs.count(), "flagged": qs.filter(flagged=True).count()}


def review_reasons(*, user) -> list[tuple[str, str, int]]:
    """``(code, label, count)`` of the flag reasons present in the user's queue."""
    queue = review_queue(user=user).order_by().values("pk")
    counts = Counter(
        ImageFlag.objects.filter(image__in=queue, active=True).values_list("reason", flat=True)
    )
    return sorted(
        ((code, flag_reason(code).label, n) for code, n in counts.items()),
        key=lambda item: (flag_reason(item[0]).priority, item[0]),
    )


def specimen_outstanding_images(*, specimen: Specimen) -> list[int]:
    """Ids of the specimen's images that have neither a verdict nor an exclusion."""
    return list(
        SmearImage.objects.filter(specimen=specimen)
        .annotate(has_verdict=_has_verdict())
        .filter(has_verdict=False)
        .order_by("id")
        .values_list("pk", flat=True)
    )


def specimen_summary(*, images) -> dict:
    """The case summary over a specimen's images (as listed by ``image_list``)."""
    model_labels, verified_labels, open_flags = Counter(), Counter(), Counter()
    agreed = reviewed = excluded = not_assessable = awaiting = out_of_domain = 0
    for image in images:
        prediction = image.predictions.all()[0] if image.predictions.all() else None
        withheld = prediction is not None and prediction.out_of_domain
        if withheld:
            out_of_domain += 1  # no model label: not counted as one, nor in the agreement
        elif prediction is not None:
            model_labels[prediction.label] += 1
        verdict = image.current_verdict
        if verdict is None:
            awaiting += 1
            for flag in image.current_flags:
                open_flags[flag.reason] += 1
            continue
        if verdict.kind == Verdict.Kind.EXCLUDED:
            excluded += 1
        elif verdict.kind == Verdict.Kind.NOT_ASSESSABLE:
            not_assessable += 1
        else:
            verified_labels[verdict.label] += 1
            if not withheld:
                reviewed += 1
                agreed += verdict.kind == Verdict.Kind.CONFIRM
    return {
        "model_labels": dict(model_labels),
        "verified_labels": dict(verified_labels),
        "reviewed": reviewed,
        "agreed": agreed,
        "agreement": agreed / reviewed if reviewed else None,
        "not_assessable": not_assessable,
        "excluded": excluded,
        "awaiting": awaiting,
        "out_of_domain": out_of_domain,
        "open_flags": [
            (code, flag_reason(code).label, n)
            for code, n in sorted(open_flags.items(), key=lambda kv: flag_reason(kv[0]).priority)
        ],
    }


def specimen_sign_state(*, specimen: Specimen) -> dict[str, int]:
    """What a sign-off form was opened on: the newest verdict on the specimen's images and the
    newest signed version (0 when none). A sign-off or amendment that names them is refused
    when either moved since (``services.signoff``), so a signature covers what was read."""
    verdict = Verdict.objects.filter(image__specimen=specimen).aggregate(m=Max("id"))["m"]
    version = specimen.sign_offs.aggregate(m=Max("version"))["m"]
    return {"seen_verdict": verdict or 0, "seen_version": version or 0}


def sign_off_history(*, specimen: Specimen) -> QuerySet:
    return specimen.sign_offs.select_related("signed_by", "report").order_by("-version")


__all__ = [
    "review_counts",
    "review_queue",
    "review_reasons",
    "sign_off_history",
    "specimen_outstanding_images",
    "specimen_sign_state",
    "specimen_summary",
]
