"""Celery tasks: thin. Take an id, call the service, decide retry or give up.

Worker start-up hooks live here too: each worker process loads the active ensemble once after
the fork (``worker_process_init``), and a started worker sweeps images still waiting in the queue.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import connections

from . import services

logger = logging.getLogger(__name__)

MAX_RETRIES = getattr(settings, "LP_CLASSIFY_MAX_RETRIES", 4)


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def classify_image(self, image_id: int) -> str:
    try:
        outcome = services.image_classify(image_id=image_id)
    except services.PermanentClassificationError:
        return "failed"
    except (services.TransientClassificationError, SoftTimeLimitExceeded, OSError) as exc:
        message = str(exc) or exc.__class__.__name__
        if self.request.retries >= self.max_retries:
            services.image_mark_failed(
                image_id=image_id,
                message=f"it failed {self.request.retries + 1} times in a row ({message})",
            )
            return "failed"
        services.image_note_retry(image_id=image_id, message=message)
        raise self.retry(exc=exc, countdown=min(5 * 2**self.request.retries, 300)) from exc
    logger.info("image %s: %s", image_id, outcome)
    return outcome


@shared_task
def classify_waiting_images() -> int:
    """Queue every image still waiting, e.g. after a model version was activated."""
    return services.enqueue_waiting_images()


@worker_process_init.connect
def load_engine_after_fork(**kwargs):
    # Connections inherited across fork are unusable; let each child open its own.
    connections.close_all()
    from inference.engine import load_active_engine

    try:
        load_active_engine()
    except Exception:  # noqa: BLE001 - tasks retry and report; the worker must still start
        logger.exception("could not load the active model version at worker start")


@worker_ready.connect
def sweep_waiting_images(sender=None, **kwargs):
    try:
        classify_waiting_images.delay()
    except Exception:  # noqa: BLE001
        logger.exception("could not queue the start-up sweep")
