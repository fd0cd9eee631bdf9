"""End to end on real parts: a Celery worker process, the broker and the database of the test
settings (PostgreSQL and Redis when reachable), and the registered tiny five-member ensemble."""

import pytest
from django.db import connection

from cases import services
from cases.models import AuditEvent, Prediction, SmearImage
from inference import registry
from tests.factories import default_specimen, home_lab
from tests.fixtures.worker import wait_for
from tests.images import upload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _status(image_id):
    return SmearImage.objects.get(pk=image_id).status


def test_uploaded_image_is_classified_by_the_worker(demo_version, celery_worker, clinician):
    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="E2E-1", display_label="P1"
    )

    image = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=1), uploaded_by=clinician
    )

    done = wait_for(
        lambda: _status(image.pk) in ("done", "failed") and _status(image.pk),
        timeout=240,
        log_path=celery_worker,
    )
    image.refresh_from_db()
    assert done == "done", image.error_message
    prediction = Prediction.objects.get(image=image)
    assert prediction.model_version == demo_version
    assert prediction.label in demo_version.class_names
    assert prediction.member_count == 5
    assert 1 <= prediction.votes <= 5
    assert sorted(v.member_name for v in prediction.member_votes.all()) == sorted(
        demo_version.member_names
    )
    assert abs(sum(prediction.probabilities.values()) - 1.0) < 1e-3
    assert image.attempts == 1
    assert AuditEvent.objects.filter(
        image=image, event_type=AuditEvent.EventType.IMAGE_CLASSIFIED
    ).exists()


def test_images_wait_without_an_active_model_and_run_after_activation(
    demo_version, celery_worker, clinician
):
    registry.retire_version(demo_version)
    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="E2E-2", display_label="P2"
    )

    image = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=2), uploaded_by=clinician
    )
    # The worker receives the task, finds no active model and leaves the image queued.
    wait_for(lambda: "waiting" in celery_worker.read_text(), timeout=120, log_path=celery_worker)
    assert _status(image.pk) == "queued"

    registry.activate_version(demo_version)

    wait_for(lambda: _status(image.pk) == "done", timeout=240, log_path=celery_worker)
    assert Prediction.objects.filter(image=image, model_version=demo_version).count() == 1


def test_the_suite_runs_on_postgresql_when_it_is_reachable():
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
    except OSError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    assert connection.vendor == "postgresql"
