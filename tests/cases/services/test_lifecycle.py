"""The image lifecycle: allowed moves, what a person may ask for, and the recovery sweep.

No network is loaded here: the sweep and the person's actions are tested on rows; sending a task
is recorded by replacing ``apply_async`` (the real broker is exercised in ``tests/faults``).
"""

import re
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

from cases import services
from cases.models import AuditEvent, SmearImage
from inference.models import ModelVersion
from tests.factories import home_lab, make_image, make_model_version, make_prediction

Status = SmearImage.Status


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="L-1", display_label="L"
    )


@pytest.fixture
def image(patient, clinician):
    return make_image(patient, clinician, seed=61)


@pytest.fixture
def sent():
    with mock.patch("cases.tasks.classify_image.apply_async") as send:
        yield send


def set_state(image, **fields):
    SmearImage.objects.filter(pk=image.pk).update(**fields)
    image.refresh_from_db()
    return image


def ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("old", "new"),
    [("done", "processing"), ("done", "failed"), ("failed", "done"), ("failed", "processing")],
)
def test_an_illegal_move_is_refused_and_nothing_is_saved(image, old, new):
    set_state(image, status=old)
    with pytest.raises(services.IllegalTransition):
        services.image_transition(
            image=image, to=new, event_type=AuditEvent.EventType.IMAGE_PROCESSING
        )
    image.refresh_from_db()
    assert image.status == old


def test_every_move_saves_updated_at_and_writes_its_audit_event(image):
    before = image.updated_at
    services.image_transition(
        image=image, to=Status.FAILED, event_type=AuditEvent.EventType.IMAGE_FAILED, message="x"
    )
    image.refresh_from_db()
    assert (image.status, image.error_message) == ("failed", "x")
    assert image.updated_at > before
    event = AuditEvent.objects.filter(image=image).latest("id")
    assert event.event_type == AuditEvent.EventType.IMAGE_FAILED
    assert event.extra_data == {"old": {"status": "queued"}, "new": {"status": "failed"}}


def test_the_status_is_written_only_by_the_lifecycle():
    """The old code wrote the status in seven places, two with .update() that skipped the audit.
    Now only ``image_transition`` assigns it (a new row starts ``queued`` in the upload)."""
    root = Path(services.__file__).parent.parent
    assignment = re.compile(r"\.status\s*=(?!=)|update\([^)]*\bstatus\s*=", re.S)
    writers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "migrations" not in path.parts and assignment.search(path.read_text())
    )
    assert writers == ["services/lifecycle.py", "services/specimens.py"]
    lifecycle = (root / "services" / "lifecycle.py").read_text()
    assert len(assignment.findall(lifecycle)) == 1  # inside image_transition


# --- What a person may ask for -------------------------------------------------------------


def test_a_failed_image_is_queued_again_with_a_fresh_attempt_count(image, clinician, sent):
    set_state(image, status=Status.FAILED, attempts=5, error_message="broken", failure_kind="image")
    result = services.image_retry(image_id=image.pk, user=clinician)
    assert result.message == "The image was queued again for classification."
    image.refresh_from_db()
    assert (image.status, image.attempts, image.error_message, image.failure_kind) == (
        "queued",
        0,
        "",
        "",
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": "processing", "processing_started_at": "now"}, "being classified right now"),
        ({"enqueued_at": "now"}, "waiting in the queue"),
        ({"status": "done"}, "already classified"),
    ],
    ids=["processing", "queued", "done"],
)
def test_retry_refuses_with_the_reason_and_changes_nothing(image, clinician, fields, reason):
    set_state(image, **{k: timezone.now() if v == "now" else v for k, v in fields.items()})
    before = AuditEvent.objects.count()
    with pytest.raises(services.ActionRefused, match=reason):
        services.image_retry(image_id=image.pk, user=clinician)
    assert AuditEvent.objects.count() == before


def test_an_image_stuck_in_processing_past_the_time_limit_can_be_retried(
    image, clinician, sent, settings, django_capture_on_commit_callbacks
):
    set_state(
        image,
        status=Status.PROCESSING,
        processing_started_at=ago(settings.CELERY_TASK_TIME_LIMIT + settings.LP_SWEEP_GRACE_S + 1),
        task_id="dead",
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.image_retry(image_id=image.pk, user=clinician)
    image.refresh_from_db()
    assert (image.status, image.task_id) == ("queued", sent.call_args.kwargs["task_id"])


def test_reclassify_needs_a_newer_active_model(image, clinician, sent):
    make_prediction(image)  # by a retired version; the image is done
    with pytest.raises(services.ActionRefused, match="No model version is active"):
        services.image_reclassify(image_id=image.pk, user=clinician)
    active = make_model_version(status=ModelVersion.Status.ACTIVE)
    result = services.image_reclassify(image_id=image.pk, user=clinician)
    assert f"with model {active.label}" in result.message
    image.refresh_from_db()
    assert image.status == "queued"
    make_prediction(image, version=active)
    with pytest.raises(services.ActionRefused, match="already classified by model"):
        services.image_reclassify(image_id=image.pk, user=clinician)


# --- The recovery sweep --------------------------------------------------------------------


def test_the_sweep_resets_processing_past_the_hard_limit_and_resends_it(
    image, sent, settings, django_capture_on_commit_callbacks
):
    limit = settings.CELERY_TASK_TIME_LIMIT + settings.LP_SWEEP_GRACE_S
    set_state(image, status=Status.PROCESSING, processing_started_at=ago(limit + 5), attempts=1)
    fresh = make_image(image.patient, image.uploaded_by, seed=62)
    set_state(fresh, status=Status.PROCESSING, processing_started_at=ago(limit - 30))

    with django_capture_on_commit_callbacks(execute=True):
        report = services.images_recover()

    assert report.requeued == [image.pk]
    image.refresh_from_db()
    assert image.status == "queued"
    assert "queued again automatically" in image.error_message
    assert [c.kwargs["args"] for c in sent.call_args_list] == [[image.pk]]
    fresh.refresh_from_db()
    assert fresh.status == "processing"  # still within its time: left alone


def test_the_sweep_fails_a_poison_image_at_the_attempt_cap(image, sent, settings):
    limit = settings.CELERY_TASK_TIME_LIMIT + settings.LP_SWEEP_GRACE_S
    set_state(
        image,
        status=Status.PROCESSING,
        processing_started_at=ago(limit + 5),
        attempts=settings.LP_CLASSIFY_MAX_ATTEMPTS,
    )
    report = services.images_recover()
    assert report.failed == [image.pk]
    image.refresh_from_db()
    assert (image.status, image.failure_kind) == ("failed", "attempts")
    assert f"tried {settings.LP_CLASSIFY_MAX_ATTEMPTS} times" in image.error_message
    sent.assert_not_called()


def test_the_sweep_resends_queued_images_with_no_task_in_flight(image, sent, settings):
    make_model_version(status=ModelVersion.Status.ACTIVE)
    never_sent = set_state(image, enqueued_at=None, updated_at=ago(60))
    lost = make_image(image.patient, image.uploaded_by, seed=63)
    set_state(lost, enqueued_at=ago(settings.LP_SWEEP_QUEUED_AFTER_S + 1))
    on_its_way = make_image(image.patient, image.uploaded_by, seed=64)
    set_state(on_its_way, enqueued_at=ago(5))

    report = services.images_recover()

    assert sorted(report.resent) == sorted([never_sent.pk, lost.pk])
    assert sorted(c.kwargs["args"][0] for c in sent.call_args_list) == sorted(report.resent)
    never_sent.refresh_from_db()
    assert never_sent.enqueued_at is not None  # recorded with the send


def test_the_sweep_leaves_queued_images_alone_while_no_model_is_active(image, sent):
    set_state(image, enqueued_at=None, updated_at=ago(3600))
    assert not services.images_recover().resent
    sent.assert_not_called()


def test_the_sweep_is_idempotent(image, sent, settings, django_capture_on_commit_callbacks):
    limit = settings.CELERY_TASK_TIME_LIMIT + settings.LP_SWEEP_GRACE_S
    set_state(image, status=Status.PROCESSING, processing_started_at=ago(limit + 5))
    with django_capture_on_commit_callbacks(execute=True):
        first = services.images_recover()
        second = services.images_recover()
    assert first.requeued == [image.pk]
    assert not second  # the image was sent a moment ago: nothing to do
    assert sent.call_count == 1


def test_a_failed_send_is_recorded_so_the_sweep_finds_it(image):
    with mock.patch(
        "cases.tasks.classify_image.apply_async", side_effect=ConnectionError("broker down")
    ):
        assert services.image_enqueue(image.pk) is False
    image.refresh_from_db()
    assert (image.status, image.enqueued_at) == ("queued", None)


def test_model_failures_are_retried_by_the_sweep_only_up_to_the_attempt_cap(image, sent, settings):
    """A model that verifies but cannot be loaded must not be retried for ever."""
    active = make_model_version(status=ModelVersion.Status.ACTIVE)
    later = timezone.now() + timedelta(hours=1)
    set_state(image, status=Status.FAILED, failure_kind="model", attempts=0)
    with mock.patch("inference.artifacts.verify_artifacts"):  # the files are sound
        # one fewer than the cap: the retried task's claim must stay under it to run the model
        for expected in range(1, settings.LP_CLASSIFY_MAX_ATTEMPTS):
            assert services.images_recover(now=later).model_retried == [image.pk]
            image.refresh_from_db()
            assert (image.status, image.attempts) == ("queued", expected)
            set_state(image, status=Status.FAILED, failure_kind="model")  # it failed again
        assert services.images_recover(now=later).model_retried == []
    assert active.status == "active"


def test_a_signed_specimen_keeps_its_failed_images_as_they_were_signed(image, clinician, sent):
    """An image that failed for the model, excluded and signed out: repairing the model must
    not classify it under the signature (the sweep did, and the signed case then showed a label
    and flags its report never had), nor may a person queue it."""
    make_model_version(status=ModelVersion.Status.ACTIVE)
    set_state(image, status=Status.FAILED, failure_kind="model", attempts=0)
    services.verdict_record(image=image, user=clinician, kind="excluded", reason="model down")
    services.specimen_sign_out(
        specimen=image.specimen, user=clinician, interpretation="inconclusive"
    )
    later = timezone.now() + timedelta(hours=1)
    with mock.patch("inference.artifacts.verify_artifacts"):  # the model is repaired
        assert services.images_recover(now=later).model_retried == []
    with pytest.raises(services.ActionRefused, match="is signed out"):
        services.image_retry(image_id=image.pk, user=clinician)
    image.refresh_from_db()
    assert (image.status, image.attempts) == ("failed", 0)
    sent.assert_not_called()


@pytest.mark.django_db(transaction=True)
def test_a_retry_during_a_sign_off_waits_for_it_and_is_then_refused(image, clinician, sent):
    """Sign-off holds the specimen's lock while it renders the report; a "try again" then must
    wait and find the specimen signed. It locked only the image and read the specimen's old
    status, so both committed: an image queued under a signature (PostgreSQL; SQLite runs
    the two one after the other anyway)."""
    import threading

    from django.db import connection, connections, transaction

    from cases.services.specimens import lock_specimen

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    set_state(image, status=Status.FAILED, failure_kind="input", attempts=1)
    services.verdict_record(image=image, user=clinician, kind="excluded", reason="blurred")
    outcome = {}

    def retry():
        try:
            services.image_retry(image_id=image.pk, user=clinician)
            outcome["result"] = "queued"
        except services.ActionRefused as exc:
            outcome["result"] = str(exc)
        finally:
            connections.close_all()

    person = threading.Thread(target=retry)
    with transaction.atomic():
        lock_specimen(image.specimen_id)  # the sign-off's lock, as it renders
        person.start()
        person.join(timeout=1.0)
        assert person.is_alive(), "the retry must wait for the sign-off"
        services.specimen_sign_out(
            specimen=image.specimen, user=clinician, interpretation="inconclusive"
        )
    person.join(timeout=30)
    assert "is signed out" in outcome["result"]
    image.refresh_from_db()
    assert image.status == "failed"
    sent.assert_not_called()


def test_a_verified_image_is_not_classified_again(image, clinician, sent):
    """Confirmed Pre on v1's result, then "classify again" with v2: the new result stood beside
    the verdict unreviewed, and the case summary said the reviewer agreed with v2's label."""
    make_prediction(image, member_labels=["Pre"] * 5)
    services.verdict_record(image=image, user=clinician, kind="confirm")
    make_model_version(status=ModelVersion.Status.ACTIVE)  # a newer version is active
    assert services.reclassify_refusal(image, ModelVersion.objects.get(status="active"))
    with pytest.raises(services.ActionRefused, match=r"verified \(Pre\)"):
        services.image_reclassify(image_id=image.pk, user=clinician)
    image.refresh_from_db()
    assert (image.status, image.predictions.count()) == ("done", 1)
    sent.assert_not_called()


@pytest.mark.django_db(transaction=True)
def test_a_locked_specimen_does_not_hold_up_rows_that_only_refer_to_it(image, clinician):
    """A verdict holds the specimen while it waits for the image the worker holds; the worker's
    audit row names the specimen, and its foreign-key check at commit waited for the verdict's
    lock: a deadlock PostgreSQL broke by failing one side. ``FOR NO KEY UPDATE`` lets it by."""
    import threading

    from django.db import connection, connections, transaction

    from cases.services.specimens import lock_specimen

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    committed = threading.Event()

    def worker_writes_an_event():
        try:
            with transaction.atomic():
                AuditEvent.objects.create(
                    event_type=AuditEvent.EventType.IMAGE_PROCESSING, specimen=image.specimen
                )
            committed.set()
        finally:
            connections.close_all()

    with transaction.atomic():
        lock_specimen(image.specimen_id)  # the verdict's lock
        worker = threading.Thread(target=worker_writes_an_event)
        worker.start()
        assert committed.wait(10), "the worker's commit waited for the specimen lock"
    worker.join(10)


def test_reclassify_is_refused_when_the_active_version_classified_it_before(image, clinician, sent):
    """Rolled back to v1, an image with v1 and v2 results: "classify again" did nothing."""
    first = make_model_version(status=ModelVersion.Status.ACTIVE)
    make_prediction(image, version=first)
    make_prediction(image)  # a later version, retired now
    with pytest.raises(services.ActionRefused, match="already classified by model"):
        services.image_reclassify(image_id=image.pk, user=clinician)
