"""Celery tasks: thin. Take an id, call a service, turn its outcome into a retry or a log line.

The rules (attempt cap, what fails, what retries, what the clinician reads) live in
``services.classification`` and ``services.lifecycle``; the recovery sweep in
``services.recovery``. Worker start-up hooks live here too.
"""

import logging
from functools import partial

from celery import shared_task
from celery.signals import worker_process_init, worker_ready
from django.db import DatabaseError, connections

from . import services

logger = logging.getLogger(__name__)

# Retries when nothing could be recorded on the image (its row was locked, the database did not
# answer, the model load ran out of time). Past them the image is left as it is: the recovery
# sweep takes it up.
UNRECORDED_RETRIES = 8


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def classify_image(self, image_id: int) -> str:
    try:
        result = services.image_classify(image_id=image_id, task_id=self.request.id)
    except Exception as exc:  # noqa: BLE001 - the service records everything it can
        tries = self.request.retries
        if tries >= UNRECORDED_RETRIES:
            logger.exception("image %s: giving up for now; the recovery sweep will", image_id)
            return "left-to-sweep"
        if isinstance(exc, services.ImageBusy | DatabaseError):
            logger.warning("image %s: %s; retrying", image_id, exc)
        else:
            logger.exception("image %s: unexpected error outside an attempt; retrying", image_id)
        raise self.retry(countdown=min(2**tries, 60)) from exc
    logger.info("image %s: %s", image_id, result.outcome.value)
    if result.outcome is services.Outcome.RETRY:
        raise self.retry(countdown=result.retry_in)
    return result.outcome.value


@shared_task(bind=True, acks_late=True, ignore_result=True)
def explain_prediction(self, prediction_id: int) -> str:
    """The Grad-CAM overlays of a saved prediction (a follow-up: the images waiting in the queue
    are classified first, and again between the members' maps, with the engine already loaded:
    classification waits at most one member's map)."""
    classify_waiting = partial(services.images_classify_waiting, task_id=self.request.id)
    classify_waiting()
    status = services.prediction_explain(
        prediction_id=prediction_id, between=partial(classify_waiting, load=False)
    )
    logger.info("prediction %s: Grad-CAM %s", prediction_id, status)
    return status


@shared_task(ignore_result=True)
def recover_images() -> dict:
    """The periodic recovery sweep (Celery beat; see ``CELERY_BEAT_SCHEDULE``)."""
    report = services.images_recover()
    return {
        "requeued": report.requeued,
        "resent": report.resent,
        "failed": report.failed,
        "model_retried": report.model_retried,
        "maps_given_up": report.maps_given_up,
    }


@worker_process_init.connect
def load_engine_after_fork(**kwargs):
    """Load and warm the active ensemble in each pool process before it takes work.

    This can take tens of seconds: ``CELERY_WORKER_PROC_ALIVE_TIMEOUT`` is set above it, so a
    replacement process (after a kill or an out-of-memory) is not killed while it loads. A load
    failure is logged and the process starts anyway: each task then reports the model problem
    on its image instead of the worker crash-looping.
    """
    connections.close_all()  # connections inherited across fork are unusable
    from inference.artifacts import hash_files_ahead
    from inference.startup import import_engine

    try:
        import_engine(alongside=hash_files_ahead).load_active_engine()
    except Exception:  # noqa: BLE001 - the worker must still start
        logger.exception("could not load the active model version at worker start")


@worker_ready.connect
def sweep_at_start(sender=None, **kwargs):
    """A worker that starts (after a crash, a deploy) recovers what the last one left behind."""
    try:
        recover_images.delay()
    except Exception:  # noqa: BLE001 - the periodic sweep will run anyway
        logger.exception("could not queue the start-up sweep")
