"""The classification service and task, in-process, with the real tiny five-member ensemble."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from cases import services
from cases.models import AuditEvent, Prediction, SmearImage
from cases.tasks import classify_image
from inference import artifacts, registry
from inference.engine import reset_engine_cache
from tests.factories import default_specimen, home_lab
from tests.images import upload

pytestmark = pytest.mark.slow
Outcome = services.Outcome


@pytest.fixture
def image(clinician):
    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="T-1", display_label="T"
    )
    return services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=5), uploaded_by=clinician
    )


def classify(image):
    return services.image_classify(image_id=image.pk, task_id=str(uuid.uuid4())).outcome


def test_without_an_active_model_the_image_waits(image, demo_version):
    registry.retire_version(demo_version)
    assert classify(image) is Outcome.WAITING
    image.refresh_from_db()
    assert (image.status, image.attempts) == (SmearImage.Status.QUEUED, 0)


def test_classification_saves_the_vote_and_is_idempotent(image, demo_version):
    assert classify(image) is Outcome.DONE
    assert classify(image) is Outcome.SKIPPED

    image.refresh_from_db()
    assert (image.status, image.attempts, image.error_message) == ("done", 1, "")
    prediction = Prediction.objects.get(image=image)
    votes = list(prediction.member_votes.all())
    assert len(votes) == prediction.member_count == len(demo_version.members)
    assert prediction.votes == sum(v.label == prediction.label for v in votes)
    assert set(prediction.probabilities) == set(demo_version.class_names)
    assert prediction.inference_ms > 0
    events = list(
        AuditEvent.objects.filter(image=image).order_by("id").values_list("event_type", flat=True)
    )
    EventType = AuditEvent.EventType
    assert events == [
        EventType.IMAGE_UPLOADED,
        EventType.IMAGE_PROCESSING,
        EventType.IMAGE_CLASSIFIED,
    ]


def test_a_redelivered_task_takes_over_its_own_attempt_but_no_other(image, demo_version):
    """A worker died mid-task: its redelivery (same task id) finishes the image; a different
    task finding the image processing leaves it to its owner."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("cases.services.attempts.record", lambda *a: services.Classified(Outcome.DONE))
        services.image_classify(image_id=image.pk, task_id="task-A")  # claims, "dies" before saving
    image.refresh_from_db()
    assert (image.status, image.task_id, image.attempts) == ("processing", "task-A", 1)

    assert services.image_classify(image_id=image.pk, task_id="task-B").outcome is Outcome.SKIPPED
    assert services.image_classify(image_id=image.pk, task_id="task-A").outcome is Outcome.DONE
    image.refresh_from_db()
    assert (image.status, image.attempts) == ("done", 2)
    assert Prediction.objects.filter(image=image).count() == 1


def test_a_new_version_adds_a_prediction_and_keeps_history(image, demo_version, clinician):
    classify(image)
    second = registry.register_version(
        name="all-ensemble",
        members=[
            {**m, "path": artifacts.artifact_local_path(demo_version, m["name"])}
            for m in demo_version.members
        ],
        preprocessing=demo_version.preprocessing,
        class_names=demo_version.class_names,
        is_demo=True,
        notes="second demo version for the history test",
    )
    registry.activate_version(second)
    result = services.image_reclassify(image_id=image.pk, user=clinician)
    assert "classification with model" in result.message

    assert classify(image) is Outcome.DONE
    versions = list(
        Prediction.objects.filter(image=image)
        .order_by("id")
        .values_list("model_version", flat=True)
    )
    assert versions == [demo_version.pk, second.pk]


def test_an_unreadable_stored_image_fails_for_good_with_a_readable_message(image, demo_version):
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(b"garbage, not an image"))

    result = classify_image.apply(args=[image.pk]).get()

    image.refresh_from_db()
    assert result == "failed"
    assert (image.status, image.failure_kind, image.attempts) == ("failed", "image", 1)
    assert image.error_message.startswith("This image could not be read")
    assert not Prediction.objects.filter(image=image).exists()


def test_repeated_errors_are_retried_up_to_the_attempt_cap_then_failed(
    image, demo_version, settings, monkeypatch
):
    settings.LP_CLASSIFY_MAX_ATTEMPTS = 3

    def unreadable(self, name, mode="rb"):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("django.core.files.storage.FileSystemStorage._open", unreadable)

    result = classify_image.apply(args=[image.pk]).get()

    image.refresh_from_db()
    assert result == "failed"
    assert (image.status, image.failure_kind, image.attempts) == ("failed", "unexpected", 3)
    assert "clearer" not in image.error_message
    assert "could not be read" in image.failure_detail  # the operator's reason
    retried = AuditEvent.objects.filter(image=image, event_type=AuditEvent.EventType.IMAGE_RETRYING)
    assert retried.count() == 2


def test_a_missing_stored_file_fails_at_once_as_an_image_problem(image, demo_version):
    default_storage.delete(image.file.name)
    assert classify_image.apply(args=[image.pk]).get() == "failed"
    image.refresh_from_db()
    assert (image.failure_kind, image.attempts) == ("image", 1)
    assert "The stored file is missing." in image.error_message


def test_an_unexpected_exception_ends_in_a_state_a_person_can_act_on(
    image, demo_version, settings, monkeypatch
):
    settings.LP_CLASSIFY_MAX_ATTEMPTS = 1

    def explode(self, images):
        raise RuntimeError("boom")

    monkeypatch.setattr("inference.engine.EnsembleEngine.classify", explode)
    assert classify_image.apply(args=[image.pk]).get() == "failed"
    image.refresh_from_db()
    assert image.status == "failed"
    assert f"image {image.pk}" in image.error_message
    assert "RuntimeError('boom')" in image.failure_detail


def test_a_model_that_fails_to_build_fails_the_image_instead_of_leaving_it_queued(
    image, demo_version, monkeypatch
):
    """Not an artifact error but a failure building or warming the ensemble: the image was left
    queued with no attempt counted, re-sent by the sweep for ever, its case "being classified"."""

    def broken(self):
        raise RuntimeError("out of memory while tracing")

    reset_engine_cache()
    monkeypatch.setattr("inference.engine.EnsembleEngine.warm_up", broken)
    assert classify_image.apply(args=[image.pk]).get() == "failed"
    image.refresh_from_db()
    assert (image.status, image.failure_kind) == ("failed", "model")
    assert "not with your image" in image.error_message
    assert "out of memory while tracing" in image.failure_detail


def test_the_last_automatic_retry_of_a_model_failure_runs_the_model(image, demo_version, settings):
    """The sweep counted its retry before the task's claim, so the last retry met the attempt
    cap and failed as "tried N times without finishing" without running the model."""
    settings.LP_CLASSIFY_MAX_ATTEMPTS = 3
    later = timezone.now() + timedelta(hours=1)
    retries = 0
    while True:
        SmearImage.objects.filter(pk=image.pk).update(status="failed", failure_kind="model")
        if not services.images_recover(now=later).model_retried:
            break
        retries += 1
        image.refresh_from_db()
        last = image.attempts
    assert retries == 2
    SmearImage.objects.filter(pk=image.pk).update(status="queued", attempts=last)
    assert classify(image) is Outcome.DONE  # the model repaired in time for the last retry


def test_a_corrupt_model_artifact_fails_for_the_operator_and_recovers_once_repaired(
    image, demo_version
):
    path = Path(default_storage.path(demo_version.members[0]["artifact"]))
    original = path.read_bytes()
    reset_engine_cache()
    try:
        path.write_bytes(original[: len(original) // 2])  # truncated: fails its checksum
        assert classify_image.apply(args=[image.pk]).get() == "failed"
        image.refresh_from_db()
        assert (image.status, image.failure_kind, image.attempts) == ("failed", "model", 0)
        assert "not with your image" in image.error_message
        assert "clearer" not in image.error_message
        assert "sha256" not in image.error_message and "sha256" in image.failure_detail
        later = timezone.now() + timedelta(hours=1)
        assert not services.images_recover(now=later).model_retried  # still broken: it waits
    finally:
        path.write_bytes(original)
    report = services.images_recover(now=later)
    assert report.model_retried == [image.pk]
    image.refresh_from_db()
    assert image.status == "queued"
    assert classify(image) is Outcome.DONE
