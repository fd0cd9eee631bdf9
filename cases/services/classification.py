"""Classifying images in a worker: claim a batch, run the engine once, save each result or failure.

The Celery task comes for one image (its own). Beside it, the task claims up to
``LP_CLASSIFY_BATCH_MAX - 1`` other images waiting in the queue (micro-batching): one fused
engine call classifies them all, and each image still gets its own attempt, prediction, audit
events and lifecycle moves (``attempts``). A lone image is never held back: the batch is what is
waiting now. Companions are taken round-robin over specimens, so one laboratory's 50-image case
does not starve another's single image, and only images never tried before ride along: a retry
runs alone on its own task, so an image that breaks the worker cannot take others down twice.

Idempotent: a duplicate delivery finds its image done (or owned by another live task) and only
helps with what is waiting. A redelivery of the same task after its worker died takes its own
image over and sends the others it had claimed back to the queue, each on a task of its own
(``attempts.release_leftovers``). Every outcome is a state a person can act on: ``done``, queued
again for a bounded retry, or ``failed`` with a message for the clinician and the technical
reason for the operator (``failure_detail``, the log with its traceback).
"""

import logging
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError

from ..models import SmearImage
from . import attempts
from .attempts import Classified, Outcome, prediction_record
from .lifecycle import ImageBusy, Kind, image_enqueue

logger = logging.getLogger(__name__)


def image_classify(*, image_id: int, task_id: str) -> Classified:
    """Classify the task's image, and the waiting images it can take along, with the active
    ensemble; the outcome for the task's own image. See the module docstring.

    Raises ``ImageBusy`` (another transaction holds the row) and database errors: the task
    retries those, since nothing could be recorded.
    """
    from inference.engine import get_engine
    from inference.exceptions import InferenceError

    try:
        engine = get_engine()
    except (SoftTimeLimitExceeded, DatabaseError):
        raise  # nothing is wrong with the model: the task retries
    except InferenceError as exc:
        logger.error("image %s: the active model could not be loaded: %s", image_id, exc)
        return attempts.fail(image_id, task_id, Kind.MODEL, detail=str(exc))
    except Exception as exc:  # noqa: BLE001 - building or warming the model failed
        # Not an artifact problem the engine names, but the model is as unusable: say so on the
        # image, so its case does not wait "queued" for ever (the task's retries would end in
        # the sweep re-sending it every few minutes, with no attempt counted and nothing said).
        logger.exception("image %s: the active model could not be loaded", image_id)
        return attempts.fail(image_id, task_id, Kind.MODEL, detail=f"{type(exc).__name__}: {exc}")
    if engine is None:
        return Classified(Outcome.WAITING)

    redelivered = attempts.release_leftovers(task_id, own=image_id)
    own = attempts.claim(image_id, task_id, engine.version)
    batch = [image_id] if own is None else []
    if not redelivered:
        room = settings.LP_CLASSIFY_BATCH_MAX - len(batch)
        batch += attempts.claim_companions(task_id, engine.version, limit=room, beside=image_id)
    if not batch:
        return own
    return _run(batch, task_id, engine, own=image_id).get(image_id, own)


# A follow-up task classifies at most this many batches of waiting images per call, and starts
# no new batch after WAITING_SECONDS_MAX: a Grad-CAM task calls it once before its maps and once
# between members (six calls for five members), so it stays well inside the task's soft time
# limit (CELERY_TASK_SOFT_TIME_LIMIT, 540 s by default) on a slow machine too.
WAITING_BATCHES_MAX = 16
WAITING_SECONDS_MAX = 60.0


def images_classify_waiting(
    *, task_id: str, batches: int = WAITING_BATCHES_MAX, load: bool = True
) -> int:
    """Classify the images waiting in the queue, batch after batch until none waits (bounded
    above), for a task that came for other work: a Grad-CAM follow-up runs this before its maps
    and between their members, so neither a case nor a lone urgent image waits behind heat maps
    for more than one member's map. How many it classified. ``load=False`` classifies only with
    the engine already loaded for the active version (between maps: never a version switch's
    load in the middle of a map). Never raises but for the soft time limit: the images' own
    tasks remain."""
    from inference.engine import get_engine

    done, deadline = 0, time.monotonic() + WAITING_SECONDS_MAX
    try:
        engine = get_engine(load=load)
        if engine is None:
            return 0
        attempts.release_leftovers(task_id, own=None)
        for _ in range(batches):
            if time.monotonic() > deadline:
                break
            batch = attempts.claim_companions(
                task_id, engine.version, limit=settings.LP_CLASSIFY_BATCH_MAX, beside=None
            )
            if not batch:
                break
            _run(batch, task_id, engine, own=None)
            done += len(batch)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # noqa: BLE001 - the images' own tasks classify them anyway
        logger.exception("task %s: could not classify the waiting images first", task_id)
    return done


def _run(batch: list[int], task_id: str, engine, *, own: int | None) -> dict[int, Classified]:
    outcomes = classify_claimed(batch, task_id, engine)
    for other, outcome in outcomes.items():
        if other != own and outcome.outcome is Outcome.RETRY:
            image_enqueue(other, countdown=outcome.retry_in)  # its own task, after the back-off
    return outcomes


def classify_claimed(image_ids: list[int], task_id: str, engine) -> dict[int, Classified]:
    """Read the claimed images, classify the readable ones in one engine call, record each."""
    if settings.LP_FAULT_DELAY_AFTER_CLAIM_S:  # test-only fault injection
        time.sleep(settings.LP_FAULT_DELAY_AFTER_CLAIM_S)
    outcomes: dict[int, Classified] = {}
    pixels, readable = [], []
    for image_id in image_ids:
        try:
            pixels.append(_read(image_id))
            readable.append(image_id)
        except _Unreadable as problem:
            outcomes[image_id] = problem.record(image_id, task_id)
    if not readable:
        return outcomes
    try:
        results = engine.classify(pixels)
    except Exception as exc:  # noqa: BLE001 - each image ends in a state a person can act on
        for image_id in readable:
            outcomes[image_id] = _engine_failed(image_id, task_id, exc)
        return outcomes
    for image_id, result in zip(readable, results, strict=True):
        outcomes[image_id] = attempts.record(image_id, task_id, engine.version, result)
    return outcomes


class _Unreadable(Exception):
    """An image whose stored file could not be turned into pixels; ``record`` says what now."""

    def __init__(self, detail: str, *, permanent: bool):
        super().__init__(detail)
        self.detail, self.permanent = detail, permanent

    def record(self, image_id: int, task_id: str) -> Classified:
        if self.permanent:
            return attempts.fail(image_id, task_id, Kind.IMAGE, detail=self.detail)
        return attempts.attempt_failed(image_id, task_id, self.detail)


def _read(image_id: int):
    """The stored image's RGB pixels; raises ``_Unreadable``."""
    from inference.decoding import decode_image
    from inference.exceptions import ImageDecodeError

    try:
        image = SmearImage.objects.get(pk=image_id)
        with image.file.open("rb") as fh:
            content = fh.read()
        return decode_image(content, max_pixels=getattr(settings, "LP_MAX_IMAGE_PIXELS", None))
    except ImageDecodeError as exc:
        raise _Unreadable(str(exc), permanent=True) from exc
    except FileNotFoundError as exc:
        logger.error("image %s: the stored file is missing: %s", image_id, exc)
        raise _Unreadable("The stored file is missing.", permanent=True) from exc
    except OSError as exc:
        logger.warning("image %s: the stored file could not be read: %s", image_id, exc)
        raise _Unreadable(f"the stored image could not be read: {exc}", permanent=False) from exc


def _engine_failed(image_id: int, task_id: str, exc: Exception) -> Classified:
    """The batch's engine call raised ``exc``: what that means for one of its images."""
    from inference.exceptions import InferenceError

    if isinstance(exc, InferenceError):
        if exc.permanent:
            return attempts.fail(image_id, task_id, Kind.UNEXPECTED, detail=str(exc))
        return attempts.attempt_failed(image_id, task_id, f"the model reported: {exc}")
    if isinstance(exc, SoftTimeLimitExceeded):
        logger.warning("image %s: the attempt ran out of time", image_id)
        return attempts.attempt_failed(
            image_id, task_id, "the attempt ran out of time (soft time limit)", kind=Kind.ATTEMPTS
        )
    logger.error("image %s: unexpected error during classification", image_id, exc_info=exc)
    return attempts.attempt_failed(image_id, task_id, repr(exc), kind=Kind.UNEXPECTED)


__all__ = [
    "Classified",
    "ImageBusy",
    "Outcome",
    "image_classify",
    "images_classify_waiting",
    "prediction_record",
]
