"""The classification lifecycle of a smear image: its statuses and the moves between them (what a
person may ask for is in ``image_requests``).

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
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from ..models import AuditEvent, SmearImage
from .audit import audit_event_create
from .flags import flags_refresh

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
