"""The recovery sweep: images that no task will come back for are put back on their way.

Run periodically by Celery beat (``cases.tasks.recover_images``) and once when a worker starts.
Idempotent and safe to run in several processes at once: each row is taken with ``SKIP LOCKED``
and re-checked under the lock, and an image sent twice is classified once.

- ``processing`` for longer than the hard time limit plus a grace: its worker died (killed, out
  of memory, machine lost) or hit the hard limit. Queued again, or failed at the attempt cap.
- ``queued`` with no task in flight: the send failed (broker down) or the message was lost
  (broker restarted without persistence). Sent again. Skipped while no model is active: those
  images wait for the activation, which sends them all.
- Grad-CAM maps still ``pending`` after ``LP_SWEEP_QUEUED_AFTER_S``: the follow-up task was lost
  or is far behind. Marked ``failed`` with that reason, so the page stops waiting for them; a
  task that runs later still stores them.
- ``failed`` because the model could not be loaded: queued again once the active version's
  artifacts verify, at most once per ``LP_SWEEP_GRACE_S``; each such retry counts against the
  attempt cap, so a model that verifies but cannot be loaded is not retried for ever. Never in
  a signed-out specimen: a failed image there was excluded or marked not assessable before the
  signature, and the signed case must not change under it.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Prediction, SmearImage, Specimen
from .audit import audit_event_create
from .lifecycle import (
    SEND_GRACE,
    EventType,
    Kind,
    Status,
    enqueue_on_commit,
    hard_limit_passed_since,
    image_enqueue,
    image_fail_at_attempt_cap,
    image_requeue_stopped,
    image_transition,
    model_retries_max,
)

logger = logging.getLogger(__name__)
BATCH = 200


@dataclass
class RecoveryReport:
    requeued: list[int] = field(default_factory=list)  # stale processing, back to queued
    resent: list[int] = field(default_factory=list)  # queued with no task in flight
    failed: list[int] = field(default_factory=list)  # stale processing at the attempt cap
    model_retried: list[int] = field(default_factory=list)  # model failures, model now sound
    maps_given_up: int = 0  # predictions whose Grad-CAM maps never came

    def __bool__(self) -> bool:
        return bool(
            self.requeued or self.resent or self.failed or self.model_retried or self.maps_given_up
        )


def images_recover(*, now=None) -> RecoveryReport:
    from inference.artifacts import get_active_version

    now = now or timezone.now()
    report = RecoveryReport()
    _recover_stale_processing(now, report)
    active = get_active_version()
    if active is not None:
        _resend_lost_queued(now, report)
        _retry_model_failures(now, active, report)
    report.maps_given_up = _give_up_lost_maps(now)
    if report:
        logger.warning(
            "recovery sweep: requeued %s, re-sent %s, failed %s, model failures retried %s, "
            "Grad-CAM maps given up %s",
            report.requeued,
            report.resent,
            report.failed,
            report.model_retried,
            report.maps_given_up,
        )
    return report


def _give_up_lost_maps(now) -> int:
    after = settings.LP_SWEEP_QUEUED_AFTER_S
    return Prediction.objects.filter(
        saliency_status=Prediction.Saliency.PENDING, created_at__lt=now - timedelta(seconds=after)
    ).update(
        saliency_status=Prediction.Saliency.FAILED,
        saliency_error=f"not computed within {round(after / 60)} minutes: the follow-up task "
        "was lost or the workers are far behind",
    )


def _locked(query: Q):
    return (
        SmearImage.objects.select_for_update(skip_locked=True)
        .filter(query)
        .order_by("updated_at", "id")[:BATCH]
    )


def _recover_stale_processing(now, report: RecoveryReport) -> None:
    stale = Q(status=Status.PROCESSING) & (
        Q(processing_started_at__lt=now - hard_limit_passed_since())
        | Q(processing_started_at__isnull=True, updated_at__lt=now - hard_limit_passed_since())
    )
    with transaction.atomic():
        for image in _locked(stale):
            if image.attempts >= settings.LP_CLASSIFY_MAX_ATTEMPTS:
                image_fail_at_attempt_cap(
                    image,
                    detail=f"attempt {image.attempts} (task {image.task_id}) never finished: "
                    "the worker died or hit the hard time limit",
                )
                report.failed.append(image.pk)
                continue
            image_requeue_stopped(
                image,
                detail=f"attempt {image.attempts} never finished",
                reason="processing past the hard time limit",
            )
            report.requeued.append(image.pk)


def _resend_lost_queued(now, report: RecoveryReport) -> None:
    lost = Q(status=Status.QUEUED) & (
        Q(enqueued_at__isnull=True, updated_at__lt=now - SEND_GRACE)
        | Q(enqueued_at__lt=now - timedelta(seconds=settings.LP_SWEEP_QUEUED_AFTER_S))
    )
    with transaction.atomic():
        images = list(_locked(lost))
    for image in images:  # each send records its own task id and time
        if image_enqueue(image.pk):
            audit_event_create(
                event_type=EventType.IMAGE_RECOVERED,
                image=image,
                new={"status": Status.QUEUED, "reason": "no task in flight: sent again"},
            )
            report.resent.append(image.pk)


def _retry_model_failures(now, active, report: RecoveryReport) -> None:
    from inference.artifacts import verify_artifacts
    from inference.exceptions import InferenceError

    waiting = Q(
        status=Status.FAILED,
        failure_kind=Kind.MODEL,
        attempts__lt=model_retries_max(),
        updated_at__lt=now - timedelta(seconds=settings.LP_SWEEP_GRACE_S),
    ) & ~Q(specimen__status__in=Specimen.SIGNED)
    if not SmearImage.objects.filter(waiting).exists():
        return
    try:
        verify_artifacts(active)
    except InferenceError as exc:
        logger.error("model failures wait: the active version is still unusable: %s", exc)
        return
    with transaction.atomic():
        for image in _locked(waiting):
            # Each automatic retry counts: a model that verifies but still cannot be loaded
            # is retried at most model_retries_max() times, then left to a person.
            image.attempts += 1
            image.task_id = ""
            image_transition(
                image=image,
                to=Status.QUEUED,
                event_type=EventType.IMAGE_RECOVERED,
                fields=("attempts", "task_id"),
                new={"reason": f"the artifacts of {active.label} verify again"},
            )
            enqueue_on_commit(image.pk)
            report.model_retried.append(image.pk)
