"""Classifying one image in a worker: claim it, run the engine, save the result or the failure.

Called by the Celery task with the image id and the task's id. Idempotent: a duplicate delivery
finds the image done (or owned by another live task) and does nothing; a redelivery of the same
task after its worker died takes the attempt over. Every outcome is a state a person can act on:
``done``, queued again for a bounded retry, or ``failed`` with a message for the clinician and
the technical reason for the operator (``failure_detail``, the log with its traceback).
"""

import enum
import logging
import os
import time
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import MemberVote, Prediction, SmearImage
from .flags import flags_refresh
from .lifecycle import (
    EventType,
    ImageBusy,
    Kind,
    Status,
    failure_message,
    image_fail_at_attempt_cap,
    image_transition,
    lock_image,
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


def image_classify(*, image_id: int, task_id: str) -> Classified:
    """Classify one image with the active ensemble. See the module docstring.

    Raises ``ImageBusy`` (another transaction holds the row) and database errors: the task
    retries those, since nothing could be recorded.
    """
    from inference.engine import get_engine
    from inference.exceptions import ImageDecodeError, InferenceError

    try:
        engine = get_engine()
    except InferenceError as exc:
        logger.error("image %s: the active model could not be loaded: %s", image_id, exc)
        return _fail(image_id, task_id, Kind.MODEL, detail=str(exc))
    if engine is None:
        return Classified(Outcome.WAITING)

    claimed = _claim(image_id, task_id, engine.version)
    if claimed is not None:
        return claimed
    try:
        if settings.LP_FAULT_DELAY_AFTER_CLAIM_S:  # test-only fault injection
            time.sleep(settings.LP_FAULT_DELAY_AFTER_CLAIM_S)
        image = SmearImage.objects.get(pk=image_id)
        with image.file.open("rb") as fh:
            content = fh.read()
        result = engine.classify([content])[0]
    except ImageDecodeError as exc:
        return _fail(image_id, task_id, Kind.IMAGE, detail=str(exc))
    except InferenceError as exc:
        if exc.permanent:
            return _fail(image_id, task_id, Kind.UNEXPECTED, detail=str(exc))
        return _attempt_failed(image_id, task_id, f"the model reported: {exc}")
    except FileNotFoundError as exc:
        logger.error("image %s: the stored file is missing: %s", image_id, exc)
        return _fail(image_id, task_id, Kind.IMAGE, detail="The stored file is missing.")
    except OSError as exc:
        logger.warning("image %s: the stored file could not be read: %s", image_id, exc)
        return _attempt_failed(image_id, task_id, f"the stored image could not be read: {exc}")
    except SoftTimeLimitExceeded:
        logger.warning("image %s: the attempt ran out of time", image_id)
        return _attempt_failed(
            image_id, task_id, "the attempt ran out of time (soft time limit)", kind=Kind.ATTEMPTS
        )
    except Exception as exc:  # noqa: BLE001 - any other error ends in a state a person can act on
        logger.exception("image %s: unexpected error during classification", image_id)
        return _attempt_failed(image_id, task_id, repr(exc), kind=Kind.UNEXPECTED)
    return _record(image_id, task_id, engine.version, result)


def _claim(image_id: int, task_id: str, version) -> Classified | None:
    """Take the image for this task; ``None`` when this task now owns an attempt."""
    with transaction.atomic():
        image = lock_image(image_id)
        if image is None or image.status in (Status.DONE, Status.FAILED):
            return Classified(Outcome.SKIPPED)
        if image.status == Status.PROCESSING and image.task_id != task_id:
            return Classified(Outcome.SKIPPED)  # another task owns the attempt
        if Prediction.objects.filter(image=image, model_version=version).exists():
            return _done_already(image, version, note="already classified")
        if image.attempts >= settings.LP_CLASSIFY_MAX_ATTEMPTS:
            image_fail_at_attempt_cap(
                image,
                detail=f"attempt limit {settings.LP_CLASSIFY_MAX_ATTEMPTS} reached "
                f"(task {task_id}, status {image.status})",
            )
            return Classified(Outcome.FAILED)
        takeover = image.status == Status.PROCESSING
        image.attempts += 1
        image.task_id = task_id
        image.processing_started_at = timezone.now()
        image_transition(
            image=image,
            to=Status.PROCESSING,
            event_type=EventType.IMAGE_PROCESSING,
            fields=("attempts", "task_id", "processing_started_at"),
            new={"attempt": image.attempts, "task_id": task_id, "redelivered": takeover},
        )
    logger.info(
        "image %s: attempt %s claimed by task %s in process %s%s",
        image_id,
        image.attempts,
        task_id,
        os.getpid(),
        " (redelivered)" if takeover else "",
    )
    return None


def _record(image_id: int, task_id: str, version, result) -> Classified:
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
            return _done_already(image, version, note="saved by another delivery")
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


def _done_already(image: SmearImage, version, *, note: str) -> Classified:
    """The active version's prediction exists already: the image is done, nothing is run."""
    image_transition(
        image=image,
        to=Status.DONE,
        event_type=EventType.IMAGE_CLASSIFIED,
        new={"model_version": version.version, "note": note},
    )
    return Classified(Outcome.SKIPPED)


def _attempt_failed(image_id: int, task_id: str, detail: str, *, kind=Kind.UNEXPECTED):
    """A temporary problem: queue the image again for a retry, or fail it at the attempt cap."""
    with transaction.atomic():
        image = lock_image(image_id)
        if not _owned(image, task_id):
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


def _fail(image_id: int, task_id: str, kind: str, *, detail: str) -> Classified:
    """A failure that retrying now cannot cure."""
    with transaction.atomic():
        image = lock_image(image_id)
        if image is None or not (image.status == Status.QUEUED or _owned(image, task_id)):
            return Classified(Outcome.SKIPPED)
        image.processing_started_at = None
        message = failure_message(kind, image=image, detail=detail)
        if kind == Kind.MODEL and image.attempts >= settings.LP_CLASSIFY_MAX_ATTEMPTS:
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


def _owned(image: SmearImage | None, task_id: str) -> bool:
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


__all__ = ["Classified", "ImageBusy", "Outcome", "image_classify", "prediction_record"]
