"""Verdicts: a person confirms, reclassifies, marks not assessable, or excludes one image.

A verdict is a row of its own and never changes; a new verdict on the same image supersedes the
earlier one (the latest counts), and both stay. Each writes an audit event. The first verdict of
a specimen moves it from ``open`` to ``in review``; a signed-out specimen takes none. A verdict
judges the result the reviewer saw: given its id, a newer result (the image was classified
again meanwhile) refuses the verdict instead of putting it on a label the reviewer never saw.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import AuditEvent, SmearImage, Specimen, Verdict
from ..roles import Capability, require
from .audit import audit_event_create
from .lifecycle import ActionRefused
from .specimens import SpecimenLocked, lock_specimen, specimen_transition

Kind = Verdict.Kind
NEEDS_PREDICTION = (Kind.CONFIRM, Kind.RECLASSIFY)


def verdict_record(
    *,
    image: SmearImage,
    user,
    kind: str,
    label: str = "",
    reason: str = "",
    comment: str = "",
    seen_prediction_id: int | None = None,
    address=None,
) -> Verdict:
    """Record ``user``'s verdict on ``image``. ``seen_prediction_id``: the result the page
    showed (``None``: whatever is latest), which a confirmation or reclassification judges;
    exclusion and "not assessable" judge the image. Raises ``ValidationError`` with a readable
    message, ``ActionRefused`` when the result changed since, or ``roles.RoleRequired``."""
    role = require(user, image.patient.lab_id, Capability.VERIFY)
    with transaction.atomic():
        specimen = lock_specimen(image.specimen_id)
        if specimen.is_signed:
            raise SpecimenLocked(specimen, "take new verdicts")
        image = SmearImage.objects.get(pk=image.pk)
        prediction = verdict_prediction(image)
        seen = seen_prediction_id
        if (
            kind in NEEDS_PREDICTION
            and seen is not None
            and getattr(prediction, "pk", None) != seen
        ):
            raise ActionRefused(
                "The model's result for this image changed after it was shown to you (the "
                "image was classified again). Nothing was recorded: reload, look at the new "
                "result, then record your verdict."
            )
        verdict = Verdict(
            image=image,
            prediction=prediction,
            kind=kind,
            reviewer=user,
            reviewer_role=role or "",
            comment=(comment or "").strip(),
            **_label_and_reason(image, prediction, kind, label, (reason or "").strip()),
        )
        previous = image.verdicts.order_by("-id").first()
        verdict.save()
        audit_event_create(
            event_type=AuditEvent.EventType.VERDICT_RECORDED,
            acting_user=user,
            address=address,
            image=image,
            old=_summary(previous) if previous else None,
            new={**_summary(verdict), "prediction_id": getattr(prediction, "pk", None)},
        )
        if specimen.status == Specimen.Status.OPEN:
            specimen_transition(
                specimen=specimen,
                to=Specimen.Status.IN_REVIEW,
                user=user,
                address=address,
                new={"reason": "first verdict"},
            )
    return verdict


def verdict_prediction(image: SmearImage):
    """The result a confirmation or reclassification of ``image`` judges: its latest, once the
    image is classified. ``None`` while it is classified again and after that failed: the
    earlier result is then no longer the image's result."""
    return image.latest_prediction if image.status == SmearImage.Status.DONE else None


def _label_and_reason(image, prediction, kind, label, reason) -> dict:
    if kind not in Kind.values:
        raise ValidationError(f"Unknown verdict {kind!r}.", code="invalid")
    if kind in NEEDS_PREDICTION and prediction is None:
        raise ValidationError(
            "This image has no result to confirm or reclassify yet. It can be excluded from "
            "the case, or marked not assessable once it is classified.",
            code="no_prediction",
        )
    if kind == Kind.CONFIRM:
        if prediction.out_of_domain:
            raise ValidationError(
                "The model gave no label for this image (outside its domain), so there is "
                "nothing to confirm: classify it yourself, or mark it not assessable.",
                code="out_of_domain",
            )
        return {"label": prediction.label, "reason": reason}
    if kind == Kind.RECLASSIFY:
        classes = prediction.model_version.class_names
        if label not in classes:
            raise ValidationError(
                f"Choose one of {', '.join(classes)} to reclassify.", code="invalid_label"
            )
        if label == prediction.label and not prediction.out_of_domain:
            raise ValidationError(
                f"{label} is the model's label: confirm it instead.", code="same_label"
            )
        if not reason and not prediction.out_of_domain:  # no model label to argue against
            raise ValidationError("Say why the image is reclassified.", code="reason_required")
        return {"label": label, "reason": reason}
    if kind == Kind.NOT_ASSESSABLE:
        if image.status not in (SmearImage.Status.DONE, SmearImage.Status.FAILED):
            raise ValidationError(
                "The image is still being classified; exclude it, or wait for its result.",
                code="not_finished",
            )
        if reason not in Verdict.NotAssessableReason.values:
            choices = "; ".join(c.label.lower() for c in Verdict.NotAssessableReason)
            raise ValidationError(f"Say why it is not assessable: {choices}.", code="reason")
        return {"label": "", "reason": reason}
    if not reason:  # excluded
        raise ValidationError("Say why the image is excluded from the case.", code="reason")
    return {"label": "", "reason": reason}


def _summary(verdict: Verdict) -> dict:
    return {
        "verdict_id": verdict.pk,
        "kind": verdict.kind,
        "label": verdict.label,
        "reason": verdict.reason[:500],
    }
