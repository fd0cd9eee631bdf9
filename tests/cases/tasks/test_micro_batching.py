"""Micro-batching: a task classifies the waiting images it can take along in one engine call,
each with its own attempt, prediction and events; fair across specimens; a crash mid-batch
leaves every image recoverable. In-process, with the real tiny five-member ensemble."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cases import services
from cases.models import AuditEvent, Prediction, SmearImage
from inference.engine import EnsembleEngine
from tests.factories import make_image, make_patient

pytestmark = pytest.mark.slow
Outcome = services.Outcome
EventType = AuditEvent.EventType


@pytest.fixture
def engine_calls(monkeypatch):
    """How many images each engine call classified, in order."""
    calls = []
    real = EnsembleEngine.classify

    def spy(self, images):
        images = list(images)
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(EnsembleEngine, "classify", spy)
    return calls


def _images(user, record: str, n: int, seed: int = 0):
    patient = make_patient(user, record_number=record, display_label=record)
    return [make_image(patient, user, seed=seed + i) for i in range(n)]


def _classify(image, task_id="task-1"):
    return services.image_classify(image_id=image.pk, task_id=task_id).outcome


def test_one_task_classifies_the_waiting_images_in_one_call_each_on_its_own_record(
    clinician, demo_version, engine_calls, settings
):
    settings.LP_CLASSIFY_BATCH_MAX = 8
    first, *others = _images(clinician, "MRN-A", 3) + _images(clinician, "MRN-B", 2, seed=10)

    assert _classify(first) is Outcome.DONE
    assert engine_calls == [5]
    for image in [first, *others]:
        image.refresh_from_db()
        assert (image.status, image.attempts) == ("done", 1)
        prediction = Prediction.objects.get(image=image)
        assert prediction.member_votes.count() == len(demo_version.members)
        events = AuditEvent.objects.filter(image=image).values_list("event_type", flat=True)
        assert list(events.order_by("id")) == [
            EventType.IMAGE_UPLOADED,
            EventType.IMAGE_PROCESSING,
            EventType.IMAGE_CLASSIFIED,
        ]
    # Their own tasks arrive later and find nothing to do.
    for image in others:
        assert _classify(image, task_id=f"own-{image.pk}") is Outcome.SKIPPED
    assert engine_calls == [5]
    assert Prediction.objects.count() == 5


def test_a_batch_computes_what_each_image_alone_would_get(clinician, demo_version, settings):
    settings.LP_CLASSIFY_BATCH_MAX = 4
    images = _images(clinician, "MRN-A", 4)
    _classify(images[0])
    batched = {p.image_id: p.probabilities for p in Prediction.objects.all()}
    Prediction.objects.all().delete()
    settings.LP_CLASSIFY_BATCH_MAX = 1
    for image in images:
        SmearImage.objects.filter(pk=image.pk).update(status="queued", attempts=0)
        _classify(image, task_id=f"alone-{image.pk}")
    for p in Prediction.objects.all():
        for name, value in p.probabilities.items():
            assert value == pytest.approx(batched[p.image_id][name], abs=1e-4)


def test_a_single_image_of_another_specimen_rides_in_the_next_batch(
    clinician, demo_version, engine_calls, settings
):
    """A 10-image case waits ahead of one urgent image: the urgent one is in the first batch."""
    settings.LP_CLASSIFY_BATCH_MAX = 3
    case = _images(clinician, "MRN-CASE", 10)
    urgent = _images(clinician, "MRN-URGENT", 1, seed=50)[0]

    _classify(case[0])
    urgent.refresh_from_db()
    assert urgent.status == "done"
    assert engine_calls == [3]
    assert SmearImage.objects.filter(status="done").count() == 3


def test_only_images_never_tried_ride_along(clinician, demo_version, engine_calls, settings):
    settings.LP_CLASSIFY_BATCH_MAX = 8
    first, retried = _images(clinician, "MRN-A", 2)
    SmearImage.objects.filter(pk=retried.pk).update(attempts=1)

    _classify(first)
    retried.refresh_from_db()
    assert (retried.status, retried.attempts) == ("queued", 1)
    assert engine_calls == [1]


def test_an_unreadable_image_fails_alone_and_its_batch_is_classified(
    clinician, demo_version, settings
):
    settings.LP_CLASSIFY_BATCH_MAX = 8
    # Seeds of its own: stored files are named by content, and this one is overwritten.
    first, broken, third = _images(clinician, "MRN-A", 3, seed=300)
    default_storage.delete(broken.file.name)
    default_storage.save(broken.file.name, ContentFile(b"garbage, not an image"))

    assert _classify(first) is Outcome.DONE
    states = dict(SmearImage.objects.values_list("pk", "status"))
    assert states == {first.pk: "done", broken.pk: "failed", third.pk: "done"}
    broken.refresh_from_db()
    assert broken.failure_kind == "image"


def test_a_failed_engine_call_sends_each_companion_back_on_its_own_task(
    clinician, demo_version, settings, monkeypatch
):
    settings.LP_CLASSIFY_BATCH_MAX = 8
    first, second = _images(clinician, "MRN-A", 2)
    sent = []
    monkeypatch.setattr(
        "cases.services.classification.image_enqueue",
        lambda pk, countdown=None: sent.append((pk, countdown)),
    )

    def explode(self, images):
        raise RuntimeError("boom")

    monkeypatch.setattr(EnsembleEngine, "classify", explode)
    result = services.image_classify(image_id=first.pk, task_id="task-1")
    assert result.outcome is Outcome.RETRY  # the task retries its own image itself
    assert sent == [(second.pk, 5.0)]  # the companion gets a task of its own, after a back-off
    for image in (first, second):
        image.refresh_from_db()
        assert (image.status, image.attempts) == ("queued", 1)


def test_a_crash_mid_batch_leaves_every_image_recoverable(
    clinician, demo_version, engine_calls, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The worker dies after claiming: the redelivered task (same id) finishes its own image,
    alone, and sends the others back to the queue on tasks of their own."""
    settings.LP_CLASSIFY_BATCH_MAX = 8
    first, second, third = _images(clinician, "MRN-A", 3)
    with monkeypatch.context() as mp:
        mp.setattr("cases.services.classification.classify_claimed", lambda *a: {})
        services.image_classify(image_id=first.pk, task_id="task-A")  # "dies" after claiming
    assert set(SmearImage.objects.values_list("status", "task_id")) == {("processing", "task-A")}

    sent = []
    monkeypatch.setattr("cases.services.lifecycle.image_enqueue", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.image_classify(image_id=first.pk, task_id="task-A").outcome
    assert outcome is Outcome.DONE
    assert engine_calls == [1]  # the redelivery ran its own image alone
    assert sorted(sent) == [second.pk, third.pk]
    for image in (second, third):
        image.refresh_from_db()
        assert (image.status, image.attempts) == ("queued", 1)
        assert AuditEvent.objects.filter(image=image, event_type=EventType.IMAGE_RECOVERED).exists()


def test_a_follow_up_task_classifies_what_waits_before_its_own_work(
    clinician, demo_version, engine_calls, settings
):
    """A Grad-CAM task runs the waiting classifications first, batch after batch until none
    waits: neither a case nor a lone image uploaded behind a case's heat maps waits for them."""
    settings.LP_CLASSIFY_BATCH_MAX = 2
    images = _images(clinician, "MRN-A", 5)
    assert services.images_classify_waiting(task_id="maps-1") == 5
    assert engine_calls == [2, 2, 1]
    assert set(SmearImage.objects.values_list("status", flat=True)) == {"done"}
    assert services.images_classify_waiting(task_id="maps-2") == 0
    assert engine_calls == [2, 2, 1]
    for image in images:
        events = AuditEvent.objects.filter(image=image, event_type=EventType.IMAGE_PROCESSING)
        assert events.get().extra_data["new"]["task_id"] == "maps-1"


def test_the_waiting_batches_per_call_are_bounded(clinician, demo_version, engine_calls, settings):
    settings.LP_CLASSIFY_BATCH_MAX = 2
    _images(clinician, "MRN-A", 5)
    assert services.images_classify_waiting(task_id="maps-1", batches=2) == 4
    assert engine_calls == [2, 2]
    assert SmearImage.objects.filter(status="queued").count() == 1
