"""The JSON status endpoint polled by status.js, and the Try again / reclassify actions."""

from unittest import mock

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from cases.models import AuditEvent, SmearImage


def _status(client, image):
    response = client.get(reverse("cases:image-status", args=[image.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response.json()


def test_status_of_a_queued_image(clinician_client, image):
    data = _status(clinician_client, image)
    assert data["status"] == "queued"
    assert data["status_label"] == "Queued"
    assert data["finished"] is False
    assert data["waiting_for_model"] is True
    assert data["label"] is None
    assert "Waiting for a model to be activated" in data["result_html"]
    assert "badge-queued" in data["badge_html"]


def test_status_of_a_finished_image_carries_the_rendered_result(
    clinician_client, image, make_version, make_prediction
):
    prediction = make_prediction(
        image,
        version=make_version(1, is_demo=True),
        member_labels=["Pre", "Pre", "Pre", "Pro", "Pre"],
    )
    data = _status(clinician_client, image)
    assert data["status"] == "done" and data["finished"] is True
    assert data["prediction_id"] == prediction.pk  # the verdict form reloads when it moves
    assert data["label"] == "Pre"
    assert data["summary"] == "Pre · 4/5 majority"
    assert "Pre-B ALL" in data["result_html"]
    assert "votes-table" in data["result_html"]
    assert "DEMO model — predictions are not meaningful." in data["result_html"]
    assert '<span class="label-chip label-pre">Pre</span>' in data["summary_html"]


def test_status_state_changes_with_the_image(clinician_client, image):
    before = _status(clinician_client, image)["state"]
    SmearImage.objects.filter(pk=image.pk).update(status="processing")
    during = _status(clinician_client, image)
    assert during["state"] != before
    assert during["finished"] is False
    SmearImage.objects.filter(pk=image.pk).update(status="failed", error_message="broken")
    after = _status(clinician_client, image)
    assert after["finished"] is True and after["error_message"] == "broken"
    assert "Try again" in after["result_html"]


def test_try_again_requeues_a_failed_image(clinician_client, image):
    SmearImage.objects.filter(pk=image.pk).update(status="failed", error_message="broken")
    response = clinician_client.post(reverse("cases:image-requeue", args=[image.pk]), follow=True)
    image.refresh_from_db()
    assert (image.status, image.error_message) == ("queued", "")
    assert AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_REQUEUED).count() == 1
    assert "The image was queued again for classification." in response.content.decode()


def test_try_again_leaves_a_finished_image_alone(
    clinician_client, image, make_version, make_prediction
):
    make_prediction(image, version=make_version(1), member_labels=["Pre"] * 5)
    clinician_client.post(reverse("cases:image-requeue", args=[image.pk]))
    image.refresh_from_db()
    assert image.status == "done"
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_REQUEUED).exists()


def test_reclassify_with_the_active_model(clinician_client, image, make_version, make_prediction):
    make_prediction(image, version=make_version(1), member_labels=["Pre"] * 5)
    make_version(2, status="active")
    response = clinician_client.post(
        reverse("cases:image-reclassify", args=[image.pk]), follow=True
    )
    image.refresh_from_db()
    assert image.status == "queued"
    assert "queued for classification with model v2" in response.content.decode()


def test_reclassify_does_nothing_when_the_active_model_already_classified_it(
    clinician_client, image, make_version, make_prediction
):
    make_prediction(image, version=make_version(1, status="active"), member_labels=["Pre"] * 5)
    response = clinician_client.post(
        reverse("cases:image-reclassify", args=[image.pk]), follow=True
    )
    image.refresh_from_db()
    assert image.status == "done"
    assert "already classified by model v1" in response.content.decode()


def test_reclassify_without_an_active_model(clinician_client, image, make_version, make_prediction):
    make_prediction(image, version=make_version(1), member_labels=["Pre"] * 5)
    response = clinician_client.post(
        reverse("cases:image-reclassify", args=[image.pk]), follow=True
    )
    image.refresh_from_db()
    assert image.status == "done"
    assert "No model version is active" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # the send runs once the requeue is committed
def test_try_again_says_so_when_the_queue_cannot_be_reached(clinician_client, image):
    """It said "The image was queued again for classification." with the broker down."""
    SmearImage.objects.filter(pk=image.pk).update(status="failed", error_message="broken")
    with mock.patch(
        "cases.tasks.classify_image.apply_async", side_effect=OperationalError("refused")
    ) as send:
        response = clinician_client.post(
            reverse("cases:image-requeue", args=[image.pk]), follow=True
        )
    send.assert_called_once()
    image.refresh_from_db()
    assert (image.status, image.enqueued_at) == ("queued", None)  # the sweep sends it again
    [message] = response.context["messages"]
    assert message.level_tag == "warning"
    assert "the classification queue could not be reached" in message.message
    assert "sent automatically once the queue is back" in message.message
    assert "queued again for classification." not in response.text


def test_the_polling_pages_have_a_place_to_say_their_updates_stopped(
    clinician_client, image, patient
):
    """status.js shows it when the updates fail or stop (tests/browser/test_status_updates.py)."""
    hidden = '<p class="notice notice-warning" data-poll-notice role="alert" hidden>'
    for url in (
        reverse("cases:image-detail", args=[image.pk]),
        reverse("cases:specimen-detail", args=[image.specimen_id]),
    ):
        page = clinician_client.get(url).content.decode()
        assert page.count(hidden) == 1, url
        assert "data-poll-url" in page and "js/status.js" in page
