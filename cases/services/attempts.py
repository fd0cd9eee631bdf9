"""One image's classification attempt, move by move: claim it for a task, save its result, or
record why it failed. Each function takes the image's row lock, checks, acts (the lifecycle's
``image_transition``) and returns a ``Classified`` outcome; ``classification`` strings them
together for a batch.

An attempt belongs to one Celery task (``SmearImage.task_id``): a redelivery of the same task
takes its attempt over; any other task leaves a ``processing`` image alone.
"""

import enum
import logging
import os
from dataclasses import dataclass
from itertools import zip_longest

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import MemberVote, Prediction, SmearImage
from .flags import flags_refresh
from .lifecycle import (
    EventType,
    Kind,
    Status,
    failure_message,
    image_fail_at_attempt_cap,
    image_requeue_stopped,
    image_transition,
    lock_image,
    model_retries_max,
)
from .saliency import saliency_enqueue

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DONE = "done"  # a prediction was saved
    WAITING = "waiting"  # no active model: the image stays queued until one is activated
    SKIPPED = "skipped"  # nothing to do: finished, gone, or owned by another live task
    RETRY = "retry"  # a temporary problem: queued again, the task retries after a back-off
    FAILED = "failed"  # failed for good; the message says why


@dataclass(frozen=True)
class Classified:
    outcome: Outcome
    retry_in: float | None = None  # seconds, with Outcome.RETRY


def claim(image_id: int, task_id: str, version) -> Classified | None:
    """Take the task's own image; ``None`` when this task now owns an attempt on it."""
    with transaction.atomic():
        image = lock_image(image_id)
        if image is None or image.status in (Status.DONE, Status.FAILED):
            return Classified(Outcome.SKIPPED)
        if image.status == Status.PROCESSING and image.task_id != task_id:
            return Classified(Outcome.SKIPPED)  # another task owns the attempt
        if Prediction.objects.filter(image=image, model_version=version).exists():
            return done_already(image, version, note="already classified")
        if image.attempts >= settings.LP_CLASSIFY_MAX_ATTEMPTS:
            image_fail_at_attempt_cap(
                image,
                detail=f"attempt limit {settings.LP_CLASSIFY_MAX_ATTEMPTS} reached "
                f"(task {task_id}, status {image.status})",
            )
            return Classified(Outcome.FAILED)
        _start_attempt(image, task_id, new={"redelivered": image.status == Status.PROCESSING})
    return None


# How many of the oldest waiting images are looked at when choosing a batch's companions.
COMPANION_CANDIDATES = 200


def claim_companions(task_id: str, version, *, limit: int, beside: int | None) -> list[int]:
    """Claim up to ``limit`` other waiting images for this task's batch; their ids, in order.

    Only images never tried before ride along (a retry runs on its own task, after its
    back-off). They are taken round-robin over specimens, oldest first within each, so a
    large case cannot starve a single image of another specimen; rows another transaction
    holds are skipped, not waited for. An image of which this version's prediction exists
    already is marked done instead.
    """
    if limit < 1:
        return []
    waiting = (
        SmearImage.objects.filter(status=Status.QUEUED, attempts=0)
        .exclude(pk=beside or 0)
        .order_by("pk")
        .values_list("pk", "specimen_id")[:COMPANION_CANDIDATES]
    )
    by_specimen: dict[int, list[int]] = {}
    for pk, specimen_id in waiting:
        by_specimen.setdefault(specimen_id, []).append(pk)
    rounds = zip_longest(*by_specimen.values())
    order = [pk for one_round in rounds for pk in one_round if pk is not None][: 2 * limit]
    claimed: list[int] = []
    with transaction.atomic():
        rows = SmearImage.objects.select_for_update(skip_locked=True).filter(
            pk__in=order, status=Status.QUEUED, attempts=0
        )
        locked = {image.pk: image for image in rows}
        done = set(
            Prediction.objects.filter(image__in=list(locked), model_version=version).values_list(
                "image_id", flat=True
            )
        )
        for pk in order:
            image = locked.get(pk)
            if image is None or len(claimed) == limit:
                continue
            if pk in done:
                done_already(image, version, note="already classified")
                continue
            _start_attempt(image, task_id, new={"batch_with": beside} if beside else {})
            claimed.append(pk)
    return claimed


def release_leftovers(task_id: str, *, own: int | None) -> bool:
    """A redelivered task (its worker died mid-batch) sends the other images it had claimed
    back to the queue, each on a task of its own; True when this is a redelivery (its own
    image, or another, is still ``processing`` under this task)."""
    with transaction.atomic():
        held = list(
            SmearImage.objects.select_for_update(skip_locked=True).filter(
                status=Status.PROCESSING, task_id=task_id
            )
        )
        for image in held:
            if image.pk == own:
                continue
            image_requeue_stopped(
                image,
                detail=f"attempt {image.attempts} (task {task_id}) never finished",
                reason="the batch it was in stopped; sent again on its own",
            )
            logger.warning("image %s: its batch (task %s) stopped; sent again", image.pk, task_id)
    return bool(held)


def _start_attempt(image: SmearImage, task_id: str, *, new: dict) -> None:
    """The locked, queued (or redelivered) ``image`` is now this task's attempt."""
    image.attempts += 1
    image.task_id = task_id
    image.processing_started_at = timezone.now()
    image_transition(
        image=image,
        to=Status.PROCESSING,
        event_type=EventType.IMAGE_PROCESSING,
        fields=("attempts", "task_id", "processing_started_at"),
        new={"attempt": image.attempts, "task_id": task_id, **new},
    )
    logger.info(
        "image %s: attempt %s claimed by task %s in process %s%s",
        image.pk,
        image.attempts,
        task_id,
        os.getpid(),
        " (redelivered)" if new.get("redelivered") else "",
    )


def record(image_id: int, task_id: str, version, result) -> Classified:
    """Save the prediction and mark the image done, unless it was finished meanwhile."""
    with transaction.atomic():
        image = lock_image(image_id)
        if image is None or image.status not in (Status.QUEUED, Status.PROCESSING):
            return Classified(Outcome.SKIPPED)
        try:
            with transaction.atomic():
                prediction = prediction_record(image=image, version=version, result=result)
            if settings.LP_SALIENCY:
                transaction.on_commit(lambda: saliency_enqueue(prediction.pk))
        except IntegrityError:
            # Another delivery of this task saved this version's prediction first.
            return done_already(image, version, note="saved by another delivery")
        image.processing_started_at = None
        image_transition(
            image=image,
            to=Status.DONE,
            event_type=EventType.IMAGE_CLASSIFIED,
            fields=("processing_started_at",),
            new={
                "label": result.label,
                "votes": result.votes,
                "agreement": result.agreement,
                "model_version": version.version,
                "task_id": task_id,
            },
        )
    return Classified(Outcome.DONE)


def done_already(image: SmearImage, version, *, note: str) -> Classified:
    """The active version's prediction exists already: the image is done, nothing is run."""
    image_transition(
        image=image,
        to=Status.DONE,
        event_type=EventType.IMAGE_CLASSIFIED,
        new={"model_version": version.version, "note": note},
    )
    return Classified(Outcome.SKIPPED)


def attempt_failed(image_id: int, task_id: str, detail: str, *, kind=Kind.UNEXPECTED):
    """A temporary problem: queue the image again for a retry, or fail it at the attempt cap."""
    with transaction.atomic():
        image = lock_image(image_id)
        if not owned(image, task_id):
            return Classified(Outcome.SKIPPED)
        if image.attempts >= settings.LP_CLASSIFY_MAX_ATTEMPTS:
            image_transition(
                image=image,
                to=Status.FAILED,
                event_type=EventType.IMAGE_FAILED,
                message=failure_message(kind, image=image),
                failure_kind=kind,
                failure_detail=f"after {image.attempts} attempts: {detail}",
                new={"error": detail[:500]},
            )
            logger.error("image %s failed after %s attempts: %s", image_id, image.attempts, detail)
            return Classified(Outcome.FAILED)
        image.enqueued_at = timezone.now()  # the retry is sent now, with a back-off
        image.processing_started_at = None
        image_transition(
            image=image,
            to=Status.QUEUED,
            event_type=EventType.IMAGE_RETRYING,
            message="A temporary problem delayed classification; it will be tried again "
            "automatically.",
            failure_detail=detail,
            fields=("enqueued_at", "processing_started_at"),
            new={"error": detail[:500], "attempt": image.attempts},
        )
        logger.warning(
            "image %s: attempt %s failed, retrying: %s", image_id, image.attempts, detail
        )
        return Classified(Outcome.RETRY, retry_in=min(5.0 * 2 ** (image.attempts - 1), 300.0))


def fail(image_id: int, task_id: str, kind: str, *, detail: str) -> Classified:
    """A failure that retrying now cannot cure."""
    with transaction.atomic():
        image = lock_image(image_id)
        if image is None or not (image.status == Status.QUEUED or owned(image, task_id)):
            return Classified(Outcome.SKIPPED)
        image.processing_started_at = None
        message = failure_message(kind, image=image, detail=detail)
        if kind == Kind.MODEL and image.attempts >= model_retries_max():
            message = failure_message("model-gave-up", image=image)
        image_transition(
            image=image,
            to=Status.FAILED,
            event_type=EventType.IMAGE_FAILED,
            message=message,
            failure_kind=kind,
            failure_detail=detail,
            fields=("processing_started_at",),
            new={"error": detail[:500], "kind": kind},
        )
    return Classified(Outcome.FAILED)


def owned(image: SmearImage | None, task_id: str) -> bool:
    return image is not None and image.status == Status.PROCESSING and image.task_id == task_id


def prediction_record(*, image: SmearImage, version, result) -> Prediction:
    """Save one ensemble result (an ``inference.voting.EnsembleResult``) with its member votes
    and the review flags it raises (``cases.flags``).

    The caller owns the transaction and the image's status."""
    prediction = Prediction.objects.create(
        image=image,
        model_version=version,
        label=result.label,
        probabilities=result.probabilities,
        votes=result.votes,
        member_count=result.member_count,
        agreement=result.agreement,
        inference_ms=result.inference_ms,
        out_of_domain=result.out_of_domain,
        ood_score=result.ood_score,
        ood_parts=result.ood_parts or {},
        saliency_status=(
            Prediction.Saliency.PENDING if settings.LP_SALIENCY else Prediction.Saliency.UNAVAILABLE
        ),
        saliency_error="" if settings.LP_SALIENCY else "Grad-CAM is switched off (LP_SALIENCY)",
    )
    MemberVote.objects.bulk_create(
        MemberVote(
            prediction=prediction, member_name=m.name, label=m.label, probabilities=m.probabilities
        )
        for m in result.members
    )
    flags_refresh(image=image, prediction=prediction)
    return prediction
