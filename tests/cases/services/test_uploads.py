import io
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image

from cases import services
from cases.models import AuditEvent, SmearImage
from tests.factories import stored_smear_files
from tests.images import image_bytes, upload


@pytest.fixture
def patient(clinician):
    return services.patient_create(owner=clinician, record_number="U-1", display_label="Up")


def test_valid_upload_is_stored_under_its_content_hash(patient, clinician):
    image = services.smear_image_upload(
        patient=patient, file=upload("field 1.png"), uploaded_by=clinician
    )
    assert image.status == SmearImage.Status.QUEUED
    assert image.original_name == "field 1.png"
    assert image.file.name == f"smears/{image.sha256[:2]}/{image.sha256}.png"
    assert (image.width, image.height, image.format) == (96, 96, "PNG")
    with default_storage.open(image.file.name, "rb") as fh:
        assert fh.read() == image_bytes()
    assert AuditEvent.objects.filter(
        image=image, event_type=AuditEvent.EventType.IMAGE_UPLOADED
    ).exists()


def test_upload_enqueues_classification_only_after_commit(
    patient, clinician, django_capture_on_commit_callbacks
):
    with mock.patch("cases.tasks.classify_image.delay") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:  # noqa: SIM117
            image = services.smear_image_upload(
                patient=patient, file=upload(), uploaded_by=clinician
            )
        delay.assert_not_called()  # nothing is sent while the transaction is open
        for callback in callbacks:
            callback()
        delay.assert_called_once_with(image.pk)


def _jpeg_truncated():
    return image_bytes("JPEG", size=256)[:600]


def _png_16bit():
    buf = io.BytesIO()
    Image.new("I;16", (64, 64), 1000).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"%PDF-1.7 definitely not an image", "is not an image"),
        (_jpeg_truncated(), "damaged or truncated"),
        (_png_16bit(), "unsupported pixel mode"),
        (image_bytes(size=16), "at least 32"),
    ],
    ids=["empty", "not-an-image", "truncated", "16-bit", "tiny"],
)
def test_bad_files_get_a_clear_message_and_leave_nothing(patient, clinician, content, expected):
    before = stored_smear_files()
    with pytest.raises(ValidationError) as exc:
        services.smear_image_upload(
            patient=patient, file=upload("bad.png", content), uploaded_by=clinician
        )
    assert expected in exc.value.messages[0]
    assert "bad.png" in exc.value.messages[0]
    assert not SmearImage.objects.exists()
    assert stored_smear_files() == before


@override_settings(LP_MAX_UPLOAD_BYTES=1000)
def test_file_over_the_size_limit_is_rejected(patient, clinician):
    with pytest.raises(ValidationError, match="limit"):
        services.smear_image_upload(patient=patient, file=upload(size=200), uploaded_by=clinician)
    assert not SmearImage.objects.exists()


@override_settings(LP_MAX_IMAGE_PIXELS=50 * 50)
def test_decompression_bomb_sized_image_is_rejected(patient, clinician):
    with pytest.raises(ValidationError, match="decompression bomb"):
        services.smear_image_upload(patient=patient, file=upload(size=96), uploaded_by=clinician)
    assert not SmearImage.objects.exists()


def test_same_image_twice_for_a_patient_is_rejected(patient, clinician):
    before = stored_smear_files()
    services.smear_image_upload(patient=patient, file=upload(seed=32), uploaded_by=clinician)
    with pytest.raises(ValidationError, match="already uploaded"):
        services.smear_image_upload(
            patient=patient, file=upload("again.png", seed=32), uploaded_by=clinician
        )
    assert SmearImage.objects.count() == 1
    assert len(stored_smear_files()) == len(before) + 1


def test_failure_while_saving_the_row_removes_the_stored_file(patient, clinician):
    before = stored_smear_files()
    broken_save = mock.patch.object(SmearImage, "save", side_effect=RuntimeError("db went away"))
    with broken_save, pytest.raises(RuntimeError):
        services.smear_image_upload(patient=patient, file=upload(seed=9), uploaded_by=clinician)
    assert stored_smear_files() == before
    assert not SmearImage.objects.exists()


def test_multi_upload_stores_good_files_and_reports_each_bad_one(patient, clinician):
    report = services.smear_images_upload(
        patient=patient,
        files=[
            upload("a.png", seed=1),
            upload("b.txt", b"hello"),
            upload("c.jpg", fmt="JPEG", seed=2),
        ],
        uploaded_by=clinician,
    )
    assert sorted(i.original_name for i in report.stored) == ["a.png", "c.jpg"]
    assert len(report.rejected) == 1 and "b.txt" in report.rejected[0]


@override_settings(LP_MAX_FILES_PER_UPLOAD=2)
def test_too_many_files_at_once_is_refused_whole(patient, clinician):
    report = services.smear_images_upload(
        patient=patient, files=[upload(f"{i}.png", seed=i) for i in range(3)], uploaded_by=clinician
    )
    assert report.stored == []
    assert "at most 2" in report.rejected[0]


def test_the_same_image_for_two_patients_is_stored_once(patient, clinician, other_clinician):
    other = services.patient_create(owner=other_clinician, record_number="U-2", display_label="B")
    first = services.smear_image_upload(
        patient=patient, file=upload(seed=21), uploaded_by=clinician
    )
    before = stored_smear_files()

    second = services.smear_image_upload(
        patient=other, file=upload("copy.png", seed=21), uploaded_by=other_clinician
    )

    assert second.file.name == first.file.name
    assert stored_smear_files() == before


def test_a_failed_upload_never_deletes_a_file_another_image_uses(
    patient, clinician, other_clinician
):
    other = services.patient_create(owner=other_clinician, record_number="U-3", display_label="C")
    first = services.smear_image_upload(
        patient=patient, file=upload(seed=22), uploaded_by=clinician
    )
    broken_save = mock.patch.object(SmearImage, "save", side_effect=RuntimeError("db went away"))
    with broken_save, pytest.raises(RuntimeError):
        services.smear_image_upload(
            patient=other, file=upload(seed=22), uploaded_by=other_clinician
        )
    assert default_storage.exists(first.file.name)
