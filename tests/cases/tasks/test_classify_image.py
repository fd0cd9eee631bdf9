"""The classification service and task, in-process, with the real tiny five-member ensemble."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cases import services
from cases.models import AuditEvent, Prediction, SmearImage
from cases.tasks import MAX_RETRIES, classify_image
from inference import registry
from tests.images import upload

pytestmark = pytest.mark.slow


@pytest.fixture
def image(clinician):
    patient = services.patient_create(owner=clinician, record_number="T-1", display_label="T")
    return services.smear_image_upload(patient=patient, file=upload(seed=5), uploaded_by=clinician)


def test_without_an_active_model_the_image_waits(image, demo_version):
    registry.retire_version(demo_version)
    assert services.image_classify(image_id=image.pk) == "waiting"
    image.refresh_from_db()
    assert (image.status, image.attempts) == (SmearImage.Status.QUEUED, 0)


def test_classification_saves_the_vote_and_is_idempotent(image, demo_version):
    assert services.image_classify(image_id=image.pk) == "done"
    assert services.image_classify(image_id=image.pk) == "skipped"

    image.refresh_from_db()
    assert (image.status, image.attempts, image.error_message) == ("done", 1, "")
    prediction = Prediction.objects.get(image=image)
    votes = list(prediction.member_votes.all())
    assert len(votes) == prediction.member_count == len(demo_version.members)
    assert prediction.votes == sum(v.label == prediction.label for v in votes)
    assert set(prediction.probabilities) == set(demo_version.class_names)
    assert prediction.inference_ms > 0
    assert (
        AuditEvent.objects.filter(
            image=image, event_type=AuditEvent.EventType.IMAGE_CLASSIFIED
        ).count()
        == 1
    )


def test_a_new_version_adds_a_prediction_and_keeps_history(image, demo_version, clinician):
    services.image_classify(image_id=image.pk)
    second = registry.register_version(
        name="all-ensemble",
        members=[
            {**m, "path": registry.artifact_local_path(demo_version, m["name"])}
            for m in demo_version.members
        ],
        preprocessing=demo_version.preprocessing,
        class_names=demo_version.class_names,
        is_demo=True,
        notes="second demo version for the history test",
    )
    registry.activate_version(second)
    image.refresh_from_db()
    services.image_requeue(image=image, user=clinician)

    assert services.image_classify(image_id=image.pk) == "done"
    versions = list(
        Prediction.objects.filter(image=image)
        .order_by("id")
        .values_list("model_version", flat=True)
    )
    assert versions == [demo_version.pk, second.pk]


def test_an_unreadable_stored_image_fails_with_a_readable_message(image, demo_version):
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(b"garbage, not an image"))

    result = classify_image.apply(args=[image.pk]).get()

    image.refresh_from_db()
    assert result == "failed"
    assert image.status == SmearImage.Status.FAILED
    assert image.error_message.startswith("This image could not be classified")
    assert not Prediction.objects.filter(image=image).exists()


def test_transient_errors_are_retried_then_recorded(image, demo_version):
    default_storage.delete(image.file.name)  # reading fails every time

    result = classify_image.apply(args=[image.pk]).get()

    image.refresh_from_db()
    assert result == "failed"
    assert image.status == SmearImage.Status.FAILED
    assert f"failed {MAX_RETRIES + 1} times in a row" in image.error_message
    assert image.attempts == MAX_RETRIES + 1
