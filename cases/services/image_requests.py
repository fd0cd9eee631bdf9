"""What a person may ask of an image's classification: try again, or classify again with the
active model version. Each request locks the specimen and the image, checks the rules, moves
the image through ``lifecycle.image_transition`` and says in a sentence what it did; the task is
sent once that is committed, and the sentence says so when the queue could not be reached.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import AuditEvent, SmearImage
from ..roles import Capability, require
from .audit import audit_event_create
from .lifecycle import (
    SEND_GRACE,
    ActionRefused,
    ImageBusy,
    Status,
    hard_limit_passed_since,
    image_enqueue,
    image_transition,
    lock_image,
)
from .specimens import lock_specimen

EventType = AuditEvent.EventType


@dataclass(frozen=True)
class ActionResult:
    image: SmearImage
    message: str  # what happened, in a sentence for the person who asked
    sent: bool = True  # False: queued, but the task could not be sent (the broker is down)


QUEUE_UNREACHABLE = (
    "The image is queued again, but the classification queue could not be reached: it will be "
    "sent automatically once the queue is back. If it is still waiting in a few minutes, tell "
    "an administrator."
)


def image_requeue(*, image_id: int, user, address=None) -> ActionResult:
    """ "Try again" or "classify again", whichever applies: ``image_reclassify`` for a finished
    image, ``image_retry`` otherwise. Raises ``ActionRefused`` with the reason."""
    status = SmearImage.objects.filter(pk=image_id).values_list("status", flat=True).first()
    if status == Status.DONE:
        return image_reclassify(image_id=image_id, user=user, address=address)
    return image_retry(image_id=image_id, user=user, address=address)


def image_retry(*, image_id: int, user, address=None) -> ActionResult:
    """Queue a failed image again, or rescue one that is stuck (sent long ago, never sent, or
    processing past the hard time limit). The attempt counter starts again."""
    with transaction.atomic():
        image = _lock_for_person(image_id, user)
        refusal = retry_refusal(image)
        if refusal is not None:
            raise ActionRefused(refusal)
        reason = {
            Status.PROCESSING: "it had stopped while being classified",
            Status.QUEUED: "it had waited in the queue without being picked up",
            Status.FAILED: "it had failed",
        }[image.status]
        result = _requeue(image, user=user, address=address, reason=reason)
    return _send(result)


def retry_refusal(image: SmearImage, now=None) -> str | None:
    """Why a person may not "try again" on this image now; ``None`` when they may."""
    now = now or timezone.now()
    if image.status == Status.DONE:
        return (
            "This image is already classified. To classify it with the model that is active "
            "now, use “Classify again”."
        )
    if image.status == Status.PROCESSING:
        started = image.processing_started_at or image.updated_at
        if now - started < hard_limit_passed_since():
            return "This image is being classified right now."
    if image.status == Status.QUEUED and not _queued_and_lost(image, now, after=_person_patience()):
        return "This image is waiting in the queue and will be classified shortly."
    return None


def image_reclassify(*, image_id: int, user, address=None) -> ActionResult:
    """Classify a finished image again with the model version that is active now."""
    from inference.artifacts import get_active_version

    with transaction.atomic():
        image = _lock_for_person(image_id, user)
        active = get_active_version()
        refusal = reclassify_refusal(image, active)
        if refusal is not None:
            raise ActionRefused(refusal)
        _requeue(image, user=user, address=address, reason=f"to be classified by {active.label}")
    return _send(
        ActionResult(image, f"The image was queued for classification with model {active.label}.")
    )


def reclassify_refusal(image: SmearImage, active) -> str | None:
    """Why "classify again" with the ``active`` version may not run on this image now; ``None``
    when it may. A verified image is not classified again: its verdict judged the result it
    has, and a new one would stand beside that verdict unreviewed, the case summary and the
    reports comparing the verdict with a label nobody looked at."""
    from ..models import Verdict

    if active is None:
        return "No model version is active, so the image cannot be classified."
    if image.status != Status.DONE:
        return (
            "Only a classified image can be classified again; this one is "
            f"{image.get_status_display().lower()}."
        )
    if image.predictions.filter(model_version=active).exists():
        return f"This image is already classified by model {active.label}."
    verdict = image.current_verdict
    if verdict is not None and verdict.kind in (Verdict.Kind.CONFIRM, Verdict.Kind.RECLASSIFY):
        return (
            f"This image is verified ({verdict.label}): the verdict stands as its result, and "
            "it is not classified again."
        )
    return None


def _lock_for_person(image_id: int, user) -> SmearImage:
    """The image, locked after its specimen: a sign-off (which holds the specimen's lock while
    it renders the report) and a person's retry run one after the other, so an image is never
    queued again under a signature. Specimen before image, as verdicts and sign-off lock."""
    specimen_id = (
        SmearImage.objects.filter(pk=image_id).values_list("specimen_id", flat=True).first()
    )
    if specimen_id is None:
        raise ActionRefused("The image does not exist.")
    specimen = lock_specimen(specimen_id)
    try:
        image = lock_image(image_id)
    except ImageBusy as exc:
        raise ActionRefused("The image is being updated right now; try again in a moment.") from exc
    if image is None:
        raise ActionRefused("The image does not exist.")
    require(user, image.patient.lab_id, Capability.REQUEUE)
    image.specimen = specimen
    if specimen.is_signed:
        raise ActionRefused(
            f"Specimen {image.specimen.accession_number} is signed out; its images are kept as "
            "they were signed."
        )
    return image


def _person_patience() -> timedelta:
    """How long a queued image must have waited before a person may send it again."""
    return timedelta(seconds=min(120, settings.LP_SWEEP_QUEUED_AFTER_S))


def _requeue(image: SmearImage, *, user, address, reason: str) -> ActionResult:
    image.attempts = 0
    image.task_id = ""
    image.processing_started_at = None
    if image.status == Status.QUEUED:  # stuck in the queue: no move, just send it again
        image.save(update_fields=["attempts", "task_id", "processing_started_at", "updated_at"])
        audit_event_create(
            event_type=EventType.IMAGE_REQUEUED,
            acting_user=user,
            address=address,
            image=image,
            new={"status": image.status, "reason": reason},
        )
    else:
        image_transition(
            image=image,
            to=Status.QUEUED,
            event_type=EventType.IMAGE_REQUEUED,
            acting_user=user,
            address=address,
            fields=("attempts", "task_id", "processing_started_at"),
            new={"reason": reason},
        )
    return ActionResult(image, "The image was queued again for classification.")


def _send(result: ActionResult) -> ActionResult:
    """Send the requeued image's task once the requeue is committed: at once, called after the
    service's transaction. When the queue could not be reached, the result says so (the image
    stays queued, unsent: the recovery sweep sends it when the broker answers again)."""
    outcome: list[bool] = []
    transaction.on_commit(lambda: outcome.append(image_enqueue(result.image.pk)))
    unsent = SmearImage.objects.filter(pk=result.image.pk, status=Status.QUEUED, enqueued_at=None)
    if outcome == [False] and unsent.exists():  # not: a worker took it meanwhile
        return ActionResult(result.image, QUEUE_UNREACHABLE, sent=False)
    return result


def _queued_and_lost(image: SmearImage, now, *, after: timedelta) -> bool:
    """Queued, and no task can be expected for it: its send failed, or it was sent ``after`` ago."""
    if image.enqueued_at is None:
        return now - image.updated_at > SEND_GRACE
    return now - image.enqueued_at > after
