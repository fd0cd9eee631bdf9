"""Smear images through the API: multipart upload, status, list, requeue."""

import io
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image

from cases.models import AuditEvent, SmearImage
from tests.factories import (
    default_specimen,
    fill_the_disk,
    make_image,
    make_model_version,
    make_prediction,
    pixels_digest,
    stored_smear_files,
)
from tests.images import image_bytes, upload


def images_url(patient):
    """Images go into a specimen; the test patient's default specimen here."""
    return f"/api/v1/specimens/{default_specimen(patient).pk}/images/"


def _encoded(mode: str, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (64, 64)).save(buffer, format=fmt)
    return buffer.getvalue()


# --- Upload -----------------------------------------------------------------------------------


def test_a_valid_png_is_accepted_and_its_status_url_works(clinician_api, patient, clinician):
    response = clinician_api.post(
        images_url(patient), {"files": [upload("field 1.png", seed=1)]}, format="multipart"
    )

    assert response.status_code == 202
    body = response.json()
    assert body["rejected"] == []
    [stored] = body["images"]
    image = SmearImage.objects.get()
    assert stored == {
        "id": image.pk,
        "original_name": "field 1.png",
        "status": "queued",
        "status_url": f"http://testserver/api/v1/images/{image.pk}/",
    }
    assert (image.patient, image.uploaded_by, image.format) == (patient, clinician, "PNG")
    assert default_storage.exists(image.file.name)

    status = clinician_api.get(stored["status_url"])
    assert status.status_code == 200
    assert status.json()["status"] == "queued"
    assert status.json()["is_finished"] is False
    assert status.json()["latest_prediction"] is None


def test_several_files_and_the_single_file_field_are_all_taken(clinician_api, patient):
    response = clinician_api.post(
        images_url(patient),
        {
            "files": [upload("a.png", seed=1), upload("b.png", seed=2)],
            "file": upload("c.png", seed=3),
        },
        format="multipart",
    )

    assert response.status_code == 202
    assert sorted(i["original_name"] for i in response.json()["images"]) == [
        "a.png",
        "b.png",
        "c.png",
    ]
    assert SmearImage.objects.filter(patient=patient).count() == 3


def test_a_single_file_field_is_accepted(clinician_api, patient):
    response = clinician_api.post(
        images_url(patient), {"file": upload("one.jpg", content=image_bytes("JPEG"))}
    )
    assert response.status_code == 202
    stored = SmearImage.objects.get()
    assert (stored.format, stored.original_format) == ("PNG", "JPEG")  # pixels only, lossless


def test_a_mixed_upload_stores_the_good_and_reports_the_bad(clinician_api, patient):
    before = stored_smear_files()

    response = clinician_api.post(
        images_url(patient),
        {"files": [upload("good.png", seed=4), upload("notes.txt", content=b"not an image")]},
        format="multipart",
    )

    assert response.status_code == 202
    body = response.json()
    assert [i["original_name"] for i in body["images"]] == ["good.png"]
    assert body["rejected"] == ["“notes.txt” is not an image (supported: JPEG, PNG, TIFF, BMP)."]
    assert SmearImage.objects.get().original_name == "good.png"
    assert len(stored_smear_files()) == len(before) + 2  # the pixels and the thumbnail


def test_a_file_the_server_cannot_store_is_reported_and_the_others_are_stored(
    isolated_media, clinician_api, patient, monkeypatch
):
    """A full disk on one file answered a bare 500, after storing the files before it."""
    before = stored_smear_files()
    fill_the_disk(monkeypatch, on=pixels_digest(seed=72))

    response = clinician_api.post(
        images_url(patient),
        {"files": [upload("p.png", seed=71), upload("q.png", seed=72), upload("r.png", seed=73)]},
        format="multipart",
    )

    assert response.status_code == 202
    body = response.json()
    assert [i["original_name"] for i in body["images"]] == ["p.png", "r.png"]
    assert body["rejected"] == [
        "“q.png” could not be stored on the server, and nothing of it was kept. Tell an "
        "administrator (the server log has the details)."
    ]
    assert str(django_settings.MEDIA_ROOT) not in response.content.decode()
    assert len(stored_smear_files()) == len(before) + 4  # nothing of q.png

    only = clinician_api.post(
        images_url(patient), {"files": [upload("q.png", seed=72)]}, format="multipart"
    )
    assert only.status_code == 503  # the server's fault alone: not a bad request
    assert only.json()["rejected"] == body["rejected"]


@pytest.mark.parametrize(
    ("name", "content", "settings", "message"),
    [
        ("notes.txt", b"just some text", {}, "is not an image"),
        ("empty.png", b"", {}, "is empty"),
        ("cut.jpg", image_bytes("JPEG", size=256)[:600], {}, "is damaged or truncated"),
        ("big.png", image_bytes(seed=7), {"LP_MAX_UPLOAD_BYTES": 1000}, "the limit is 1000"),
        ("bomb.png", image_bytes(seed=8), {"LP_MAX_IMAGE_PIXELS": 1000}, "decompression bomb"),
    ],
    ids=["not-an-image", "empty", "truncated-jpeg", "too-large", "bomb"],
)
def test_an_invalid_file_is_refused_and_leaves_nothing_behind(
    clinician_api, patient, name, content, settings, message
):
    before = stored_smear_files()

    with override_settings(**settings):
        response = clinician_api.post(
            images_url(patient), {"files": [upload(name, content=content)]}, format="multipart"
        )

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "No image was stored."
    [rejection] = body["rejected"]
    assert rejection.startswith(f"“{name}”")
    assert message in rejection
    assert not SmearImage.objects.exists()
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_UPLOADED).exists()
    assert stored_smear_files() == before


def test_the_same_image_twice_is_refused_the_second_time(clinician_api, patient):
    first = clinician_api.post(images_url(patient), {"files": [upload("x.png", seed=9)]})
    second = clinician_api.post(images_url(patient), {"files": [upload("y.png", seed=9)]})

    assert first.status_code == 202
    assert second.status_code == 400
    assert second.json()["rejected"] == ["“y.png” was already uploaded for this patient."]
    assert SmearImage.objects.count() == 1


def test_an_upload_without_files_is_refused(clinician_api, patient):
    response = clinician_api.post(images_url(patient), {}, format="multipart")

    assert response.status_code == 400
    assert response.json()["rejected"] == ["Choose at least one image file."]


def test_a_field_that_is_not_a_file_is_refused(clinician_api, patient):
    response = clinician_api.post(images_url(patient), {"files": ["text"]}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()


def test_json_is_not_an_upload(clinician_api, patient):
    response = clinician_api.post(images_url(patient), {"files": []}, format="json")
    assert response.status_code == 415


@override_settings(LP_MAX_FILES_PER_UPLOAD=2, DATA_UPLOAD_MAX_NUMBER_FILES=10)
def test_too_many_files_at_once_are_refused(clinician_api, patient):
    files = [upload(f"{n}.png", seed=n) for n in range(3)]
    response = clinician_api.post(images_url(patient), {"files": files}, format="multipart")

    assert response.status_code == 400
    assert response.json()["rejected"] == ["3 files were sent; at most 2 at a time."]
    assert not SmearImage.objects.exists()


def test_an_upload_to_another_clinicians_patient_is_404(other_api, patient):
    before = stored_smear_files()
    response = other_api.post(images_url(patient), {"files": [upload(seed=10)]})

    assert response.status_code == 404
    assert not SmearImage.objects.exists()
    assert stored_smear_files() == before


def test_classification_is_enqueued_once_the_upload_commits(
    clinician_api, patient, django_capture_on_commit_callbacks
):
    with (
        mock.patch("cases.tasks.classify_image.apply_async") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = clinician_api.post(images_url(patient), {"files": [upload(seed=11)]})

    assert response.status_code == 202
    assert [c.kwargs["args"] for c in delay.call_args_list] == [
        [response.json()["images"][0]["id"]]
    ]


# --- Status, list ------------------------------------------------------------------------------


def test_the_image_shows_its_latest_result_with_the_uncertainty(clinician_api, image):
    make_prediction(image, member_labels=["Pre"] * 5)
    latest = make_prediction(
        image,
        version=make_model_version(is_demo=True),
        # three votes for Pro, one each for Early and Pre; the mean for Pro is 0.7
        member_probabilities=[
            {"Benign": 0.03, "Early": 0.03, "Pre": 0.04, "Pro": 0.90},
            {"Benign": 0.03, "Early": 0.03, "Pre": 0.04, "Pro": 0.90},
            {"Benign": 0.03, "Early": 0.03, "Pre": 0.04, "Pro": 0.90},
            {"Benign": 0.05, "Early": 0.50, "Pre": 0.05, "Pro": 0.40},
            {"Benign": 0.05, "Early": 0.05, "Pre": 0.50, "Pro": 0.40},
        ],
    )

    body = clinician_api.get(f"/api/v1/images/{image.pk}/").json()

    assert body["status"] == "done"
    assert body["is_finished"] is True
    assert (body["width"], body["height"], body["format"]) == (96, 96, "PNG")
    assert body["sha256"] == image.sha256
    assert body["uploaded_by"] == "dr_ada"
    assert body["patient_id"] == image.patient_id
    assert body["predictions_url"].endswith(f"/api/v1/images/{image.pk}/predictions/")
    result = body["latest_prediction"]
    assert result["id"] == latest.pk
    assert (result["label"], result["votes"], result["member_count"]) == ("Pro", 3, 5)
    assert result["agreement"] == "majority"
    assert set(result["probabilities"]) == {"Benign", "Early", "Pre", "Pro"}
    assert result["confidence"] == pytest.approx(0.7)
    assert [v["label"] for v in result["member_votes"]] == ["Pro", "Pro", "Pro", "Early", "Pre"]
    assert result["member_votes"][0]["member_name"] == "ResNet50"
    version = latest.model_version
    assert result["model_version"] == {
        "version": version.version,
        "name": version.name,
        "label": f"v{version.version} DEMO",
        "is_demo": True,
    }
    assert result["research_use_only"].startswith("Research use only")


def test_a_failed_image_says_why(clinician_api, image):
    SmearImage.objects.filter(pk=image.pk).update(
        status=SmearImage.Status.FAILED, error_message="This image could not be classified: x."
    )

    body = clinician_api.get(f"/api/v1/images/{image.pk}/").json()

    assert (body["status"], body["is_finished"]) == ("failed", True)
    assert body["error_message"] == "This image could not be classified: x."


def test_the_patients_images_are_listed_with_their_latest_label(clinician_api, patient, clinician):
    first = make_image(patient, clinician, seed=21, name="first.png")
    make_prediction(first, member_labels=["Benign"] * 5)
    make_image(patient, clinician, seed=22, name="second.png")

    body = clinician_api.get(images_url(patient)).json()

    assert body["count"] == 2
    newest, oldest = body["results"]
    assert (newest["original_name"], newest["status"], newest["latest_prediction"]) == (
        "second.png",
        "queued",
        None,
    )
    assert oldest["latest_prediction"]["label"] == "Benign"
    assert oldest["latest_prediction"]["agreement"] == "unanimous"
    assert oldest["latest_prediction"]["research_use_only"]
    assert oldest["status_url"] == f"http://testserver/api/v1/images/{first.pk}/"


def test_another_clinicians_images_do_not_exist(other_api, patient, image):
    assert other_api.get(images_url(patient)).status_code == 404
    assert other_api.get(f"/api/v1/images/{image.pk}/").status_code == 404


# --- Requeue -------------------------------------------------------------------------------------


def test_a_failed_image_can_be_queued_again(
    clinician_api, clinician, image, django_capture_on_commit_callbacks
):
    SmearImage.objects.filter(pk=image.pk).update(
        status=SmearImage.Status.FAILED, error_message="broken"
    )

    with (
        mock.patch("cases.tasks.classify_image.apply_async") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = clinician_api.post(f"/api/v1/images/{image.pk}/requeue/")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["error_message"]) == ("queued", "")
    assert [c.kwargs["args"] for c in delay.call_args_list] == [[image.pk]]
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.IMAGE_REQUEUED)
    assert (event.acting_user, event.image_id) == (clinician, image.pk)
    assert event.extra_data == {
        "old": {"status": "failed"},
        "new": {"status": "queued", "reason": "it had failed"},
    }


def test_requeueing_an_image_on_its_way_is_refused_with_the_reason(clinician_api, image):
    """The old API answered 202 and changed nothing; now it says why nothing changed."""
    SmearImage.objects.filter(pk=image.pk).update(enqueued_at=timezone.now())
    response = clinician_api.post(f"/api/v1/images/{image.pk}/requeue/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This image is waiting in the queue and will be classified shortly."
    }
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_REQUEUED).exists()


def test_an_image_stuck_in_processing_can_be_sent_again(
    clinician_api, image, django_capture_on_commit_callbacks, settings
):
    """The old API answered 202 for an image stuck in processing and did nothing."""
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 3600)
    SmearImage.objects.filter(pk=image.pk).update(
        status=SmearImage.Status.PROCESSING, processing_started_at=long_ago, task_id="dead"
    )
    with (
        mock.patch("cases.tasks.classify_image.apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = clinician_api.post(f"/api/v1/images/{image.pk}/requeue/")

    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert send.call_count == 1


def test_an_image_being_classified_now_is_not_sent_twice(clinician_api, image):
    SmearImage.objects.filter(pk=image.pk).update(
        status=SmearImage.Status.PROCESSING, processing_started_at=timezone.now()
    )
    response = clinician_api.post(f"/api/v1/images/{image.pk}/requeue/")
    assert response.status_code == 409
    assert response.json()["detail"] == "This image is being classified right now."


def test_another_clinician_cannot_requeue(other_api, image):
    SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.FAILED)

    assert other_api.post(f"/api/v1/images/{image.pk}/requeue/").status_code == 404
    image.refresh_from_db()
    assert image.status == SmearImage.Status.FAILED


def test_the_upload_request_body_does_not_need_a_content_type_per_file(clinician_api, patient):
    """curl -F files=@x.png sends application/octet-stream; the type is judged from content."""
    file = SimpleUploadedFile("x.png", image_bytes(seed=30), content_type="application/x-unknown")
    assert clinician_api.post(images_url(patient), {"files": [file]}).status_code == 202


def test_listing_images_costs_the_same_queries_for_one_or_many(clinician_api, patient, clinician):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert clinician_api.get(images_url(patient)).status_code == 200
        return len(captured)

    make_prediction(make_image(patient, clinician, seed=41))
    one = queries()
    for seed in (42, 43, 44):
        make_prediction(make_image(patient, clinician, seed=seed))
    assert queries() == one


@pytest.mark.django_db(transaction=True)  # the send runs at commit, as in a request
def test_requeue_says_when_the_queue_cannot_be_reached(clinician_api, image):
    """The page said so, the API answered 202 with nothing to tell a queued-but-unsent image
    from a sent one."""
    SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.FAILED)
    with mock.patch(
        "cases.tasks.classify_image.apply_async", side_effect=OperationalError("refused")
    ):
        response = clinician_api.post(f"/api/v1/images/{image.pk}/requeue/")
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["sent"]) == ("queued", False)
    assert "could not be reached" in body["detail"]

    with mock.patch("cases.tasks.classify_image.apply_async"):
        SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.FAILED)
        body = clinician_api.post(f"/api/v1/images/{image.pk}/requeue/").json()
    assert (body["sent"], body["detail"]) == (
        True,
        "The image was queued again for classification.",
    )
