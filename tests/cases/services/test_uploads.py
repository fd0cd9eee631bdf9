import hashlib
import io
from unittest import mock

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image

from cases import services
from cases.models import AuditEvent, SmearImage
from inference.decoding import decode_image
from tests.factories import (
    default_specimen,
    home_lab,
    stored_smear_files,
)
from tests.images import image_bytes, smear_like_array, upload


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="U-1", display_label="Up"
    )


def stored_pixels(image) -> np.ndarray:
    with default_storage.open(image.file.name, "rb") as fh:
        return decode_image(fh.read())


def test_valid_upload_is_stored_under_its_content_hash(patient, clinician):
    image = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload("field 1.png"), uploaded_by=clinician
    )
    assert image.status == SmearImage.Status.QUEUED
    assert image.original_name == "field 1.png"
    assert image.file.name == f"smears/{image.sha256[:2]}/{image.sha256}.png"
    assert (image.width, image.height, image.format) == (96, 96, "PNG")
    with default_storage.open(image.file.name, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == image.sha256
    assert np.array_equal(stored_pixels(image), decode_image(image_bytes()))
    with default_storage.open(image.thumbnail.name, "rb") as fh, Image.open(fh) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 320
    assert AuditEvent.objects.filter(
        image=image, event_type=AuditEvent.EventType.IMAGE_UPLOADED
    ).exists()


def _jpeg_with_metadata_and_trailer() -> bytes:
    """A JPEG whose EXIF names a patient, rotated by its EXIF orientation, with an HTML trailer."""
    exif = Image.Exif()
    exif[0x010E] = "PATIENT: DOE, JANE MRN 000123"  # ImageDescription
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buf = io.BytesIO()
    Image.fromarray(smear_like_array(seed=12, size=96)[:, :64]).save(
        buf, "JPEG", exif=exif.tobytes(), comment=b"MRN 000123"
    )
    return buf.getvalue() + b"<html><script>alert(1)</script></html>"


def test_what_is_stored_carries_nothing_but_the_pixels_the_model_sees(patient, clinician):
    """The auditor's JPEG (EXIF with a name and record number, a comment, an HTML trailer) used
    to be stored and served byte for byte."""
    original = _jpeg_with_metadata_and_trailer()
    image = services.smear_image_upload(
        specimen=default_specimen(patient),
        file=upload("double.jpg.exe", original),
        uploaded_by=clinician,
    )

    with default_storage.open(image.file.name, "rb") as fh:
        stored = fh.read()
    for secret in (b"DOE", b"000123", b"<html", b"Exif"):
        assert secret not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert im.format == "PNG" and not im.getexif() and "comment" not in im.info
    assert (image.format, image.original_format) == ("PNG", "JPEG")
    # Orientation applied: the 96x64 field is stored upright as 64x96, as the model sees it.
    assert (image.width, image.height) == (96, 64)
    assert np.array_equal(stored_pixels(image), decode_image(original))


@pytest.mark.parametrize("mode", ["I;16", "F"], ids=["16-bit", "float"])
def test_16_bit_and_float_grey_images_are_accepted_and_scaled_to_8_bits(patient, clinician, mode):
    values = np.linspace(0, 65535 if mode == "I;16" else 1.0, 64 * 64).reshape(64, 64)
    buf = io.BytesIO()
    deep = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.float32))
    deep.save(buf, "PNG" if mode == "I;16" else "TIFF")
    image = services.smear_image_upload(
        specimen=default_specimen(patient),
        file=upload("deep.img", buf.getvalue()),
        uploaded_by=clinician,
    )
    pixels = stored_pixels(image)
    assert pixels.dtype == np.uint8
    assert (pixels.min(), pixels.max()) == (0, 255)  # the full range, scaled


@override_settings(LP_MAX_UPLOAD_BYTES=20 * 1024 * 1024)
def test_the_size_limit_message_gives_the_real_figures(patient, clinician):
    """It used to say "is 20.0 MB; the limit is 20.0 MB"."""
    file = upload("big.png")
    file.size = 20 * 1024 * 1024 + 1
    with pytest.raises(ValidationError) as exc:
        services.smear_image_upload(
            specimen=default_specimen(patient), file=file, uploaded_by=clinician
        )
    assert "is 20,971,521 bytes; the limit is 20,971,520 bytes" in exc.value.messages[0]


def test_upload_enqueues_classification_only_after_commit(
    patient, clinician, django_capture_on_commit_callbacks
):
    with mock.patch("cases.tasks.classify_image.apply_async") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:  # noqa: SIM117
            image = services.smear_image_upload(
                specimen=default_specimen(patient), file=upload(), uploaded_by=clinician
            )
        delay.assert_not_called()  # nothing is sent while the transaction is open
        for callback in callbacks:
            callback()
        assert [c.kwargs["args"] for c in delay.call_args_list] == [[image.pk]]


def _jpeg_truncated():
    return image_bytes("JPEG", size=256)[:600]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"%PDF-1.7 definitely not an image", "is not an image"),
        (_jpeg_truncated(), "damaged or truncated"),
        (image_bytes(size=16), "at least 32"),
    ],
    ids=["empty", "not-an-image", "truncated", "tiny"],
)
def test_bad_files_get_a_clear_message_and_leave_nothing(patient, clinician, content, expected):
    before = stored_smear_files()
    with pytest.raises(ValidationError) as exc:
        services.smear_image_upload(
            specimen=default_specimen(patient),
            file=upload("bad.png", content),
            uploaded_by=clinician,
        )
    assert expected in exc.value.messages[0]
    assert "bad.png" in exc.value.messages[0]
    assert not SmearImage.objects.exists()
    assert stored_smear_files() == before


@override_settings(LP_MAX_UPLOAD_BYTES=1000)
def test_file_over_the_size_limit_is_rejected(patient, clinician):
    with pytest.raises(ValidationError, match="limit"):
        services.smear_image_upload(
            specimen=default_specimen(patient), file=upload(size=200), uploaded_by=clinician
        )
    assert not SmearImage.objects.exists()


@override_settings(LP_MAX_IMAGE_PIXELS=50 * 50)
def test_decompression_bomb_sized_image_is_rejected(patient, clinician):
    with pytest.raises(ValidationError, match="decompression bomb"):
        services.smear_image_upload(
            specimen=default_specimen(patient), file=upload(size=96), uploaded_by=clinician
        )
    assert not SmearImage.objects.exists()


def test_same_image_twice_for_a_patient_is_rejected(patient, clinician):
    before = stored_smear_files()
    services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=32), uploaded_by=clinician
    )
    with pytest.raises(ValidationError, match="already uploaded"):
        services.smear_image_upload(
            specimen=default_specimen(patient),
            file=upload("again.png", seed=32),
            uploaded_by=clinician,
        )
    assert SmearImage.objects.count() == 1
    assert len(stored_smear_files()) == len(before) + 2  # the pixels and the thumbnail


def test_failure_while_saving_the_row_removes_the_stored_file(patient, clinician):
    before = stored_smear_files()
    broken_save = mock.patch.object(SmearImage, "save", side_effect=RuntimeError("db went away"))
    with broken_save, pytest.raises(RuntimeError):
        services.smear_image_upload(
            specimen=default_specimen(patient), file=upload(seed=9), uploaded_by=clinician
        )
    assert stored_smear_files() == before
    assert not SmearImage.objects.exists()


def test_multi_upload_stores_good_files_and_reports_each_bad_one(patient, clinician):
    report = services.smear_images_upload(
        specimen=default_specimen(patient),
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
        specimen=default_specimen(patient),
        files=[upload(f"{i}.png", seed=i) for i in range(3)],
        uploaded_by=clinician,
    )
    assert report.stored == []
    assert "at most 2" in report.rejected[0]
