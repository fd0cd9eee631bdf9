"""The classification lifecycle of a smear image: its statuses, the moves between them, and who
may make which move.

::

    queued ──claim──► processing ──result──► done
      ▲  ▲              │    │                 │
      │  └── retry, ────┘    └──► failed       │
      │      recovery              │           │
      └── a person: retry ─────────┘           │
      └── a person: reclassify (another model version is active) ◄┘

Every status change goes through ``image_transition``: it refuses a move that is not in
``ALLOWED`` (``IllegalTransition``), saves the status with ``updated_at`` and the fields the move
changes, and writes the move's audit event, in the caller's transaction on a row the caller
locked (grand-challenge's lock, check, act). A person's request that the rules refuse raises
``ActionRefused`` with a sentence that says why; the UI, the API and the admin show it as it is.

An attempt belongs to one Celery task (``task_id``). A redelivery of the same task (its worker
died mid-task) takes the attempt over; any other task leaves a ``processing`` image alone. The
recovery sweep (``images_recover``) handles what no task will come back for.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from ..models import AuditEvent, SmearImage
from ..roles import Capability, require
from .audit import audit_event_create
from .flags import flags_refresh
from .specimens import lock_specimen

logger = logging.getLogger(__name__)

Status = SmearImage.Status
Kind = SmearImage.FailureKind
EventType = AuditEvent.EventType

ALLOWED: dict[str, set[str]] = {
    Status.QUEUED: {Status.PROCESSING, Status.DONE, Status.FAILED},
    # PROCESSING -> PROCESSING: a redelivered task takes over its own attempt.
    Status.PROCESSING: {Status.PROCESSING, Status.DONE, Status.QUEUED, Status.FAILED},
    Status.DONE: {Status.QUEUED},
    Status.FAILED: {Status.QUEUED},
}

# What a clinician reads for each kind of failure. Technical details go to the operator (the log,
# ``failure_detail`` and the audit event), never here.
FAILURE_MESSAGES = {
    Kind.IMAGE: "This image could not be read: {detail} Check the file and upload it again.",
    Kind.MODEL: (
        "The model could not be loaded, so this image was not classified. This is a problem on "
        "the server, not with your image: the operators have been told, and the image will be "
        "classified automatically once the model is repaired."
    ),
    "model-gave-up": (
        "The model could not be loaded, so this image was not classified, after {tries} "
        "tries. This is a problem on the server, not with your image: tell an administrator, "
        "then use “Try again” once the model is repaired."
    ),
    Kind.ATTEMPTS: (
        "Classification was tried {attempts} times without finishing (the worker stopped or ran "
        "out of time each time). Try again later; if it fails again, tell an administrator."
    ),
    Kind.UNEXPECTED: (
        "An unexpected error stopped classification of this image. The operators can find the "
        "details under image {image_id}. Try again; if it fails again, tell an administrator."
    ),
}


class IllegalTransition(Exception):
    """A status move that the lifecycle does not allow (a bug in the caller)."""


class ActionRefused(Exception):
    """A person asked for something the rules refuse now; ``str(exc)`` says why."""


class ImageBusy(Exception):
    """The image row is locked by another transaction; try again shortly."""


def image_transition(
    *,
    image: SmearImage,
    to: str,
    event_type: int,
    acting_user=None,
    address=None,
    message: str = "",
    failure_kind: str = Kind.NONE,
    failure_detail: str = "",
    fields: tuple[str, ...] = (),
    new: dict | None = None,
) -> SmearImage:
    """Move a locked ``image`` to status ``to``: check, save, audit. ``fields`` are other fields
    the caller changed on the instance and that must be saved with the move."""
    old = image.status
    if to not in ALLOWED[old]:
        raise IllegalTransition(f"image {image.pk}: {old} -> {to} is not allowed")
    image.status = to
    image.error_message = message[:2000]
    image.failure_kind = failure_kind
    image.failure_detail = failure_detail[:4000]
    image.save(
        update_fields=[
            "status",
            "error_message",
            "failure_kind",
            "failure_detail",
            "updated_at",
            *fields,
        ]
    )
    audit_event_create(
        event_type=event_type,
        acting_user=acting_user,
        address=address,
        image=image,
        old={"status": old},
        new={"status": to, **(new or {})},
    )
    if to == Status.FAILED:
        flags_refresh(image=image, prediction=None)
    return image


def image_fail_at_attempt_cap(image: SmearImage, *, detail: str) -> SmearImage:
    """The attempt cap is reached: the image ends ``failed`` instead of looping."""
    return image_transition(
        image=image,
        to=Status.FAILED,
        event_type=EventType.IMAGE_FAILED,
        message=failure_message(Kind.ATTEMPTS, image=image),
        failure_kind=Kind.ATTEMPTS,
        failure_detail=detail,
    )


def lock_image(image_id: int) -> SmearImage | None:
    """The image row, locked for this transaction (``NOWAIT``: a busy row raises ``ImageBusy``)."""
    try:
        return SmearImage.objects.select_for_update(nowait=True, no_key=True).get(pk=image_id)
    except SmearImage.DoesNotExist:
        return None
    except DatabaseError as exc:
        raise ImageBusy(f"image {image_id} is locked by another transaction") from exc


def image_requeue_stopped(image: SmearImage, *, detail: str, reason: str) -> SmearImage:
    """The locked ``processing`` image's worker stopped: queue it again and send its task on
    commit (the recovery sweep, and a redelivered task for the other images of its batch)."""
    image.processing_started_at = None
    image.task_id = ""
    image_transition(
        image=image,
        to=Status.QUEUED,
        event_type=EventType.IMAGE_RECOVERED,
        message="The worker stopped while classifying this image; it was queued again "
        "automatically.",
        failure_detail=detail,
        fields=("processing_started_at", "task_id"),
        new={"reason": reason},
    )
    enqueue_on_commit(image.pk)
    return image


def failure_message(kind: str, *, image: SmearImage, detail: str = "") -> str:
    return FAILURE_MESSAGES[kind].format(
        detail=detail,
        attempts=image.attempts,
        tries=image.attempts + 1,  # a model failure: the first try, then the sweep's retries
        image_id=image.pk,
    )


def model_retries_max() -> int:
    """How often the recovery sweep retries an image that failed because the model could not be
    loaded. Each retry counts an attempt before the retried task claims the image, and a claim
    at the attempt cap fails without running the model: one fewer than the cap, so the last
    retry still runs."""
    return max(settings.LP_CLASSIFY_MAX_ATTEMPTS - 1, 0)


def recovered_within(image: SmearImage) -> timedelta:
    """How long the recovery sweep may take, at most, to send a stuck image on its way again."""
    if image.status == Status.PROCESSING:
        wait = hard_limit_passed_since()
    else:
        wait = timedelta(seconds=settings.LP_SWEEP_QUEUED_AFTER_S)
    return wait + timedelta(seconds=settings.LP_SWEEP_INTERVAL_S)


# A queued image whose send has not been recorded yet may be mid-upload (the send runs on commit).
SEND_GRACE = timedelta(seconds=10)


def hard_limit_passed_since() -> timedelta:
    """How long a ``processing`` image may stay so before nothing can still be working on it."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + settings.LP_SWEEP_GRACE_S)


# --- Sending the task ------------------------------------------------------------------------


def image_enqueue(image_id: int, *, countdown: float | None = None) -> bool:
    """Send the classification task of a queued image (to run ``countdown`` seconds from now,
    a retry's back-off); record its id and time first, clear the time if the send fails (then
    the sweep sends it again once the broker answers). ``False`` when nothing was sent. Never
    raises."""
    from ..tasks import classify_image

    task_id = str(uuid.uuid4())
    try:
        marked = SmearImage.objects.filter(pk=image_id, status=Status.QUEUED).update(
            task_id=task_id, enqueued_at=timezone.now()
        )
        if not marked:  # no longer queued (taken, finished or gone): nothing to send
            return False
        classify_image.apply_async(args=[image_id], task_id=task_id, countdown=countdown)
    except Exception:  # noqa: BLE001 - a broker or database outage must not fail the caller
        logger.exception("could not send the classification of image %s; the sweep will", image_id)
        try:
            SmearImage.objects.filter(pk=image_id, task_id=task_id).update(enqueued_at=None)
        except DatabaseError:
            logger.exception("could not mark image %s as not sent", image_id)
        return False
    return True


def enqueue_on_commit(image_id: int) -> None:
    transaction.on_commit(lambda: image_enqueue(image_id))


# --- What a person may ask for ---------------------------------------------------------------


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
