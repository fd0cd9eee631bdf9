"""Content-addressed storage of uploads and its faults: one file for the same pixels, nothing
left half-written, nothing another image uses ever deleted."""

import hashlib
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from PIL import Image

from cases import services
from cases.models import SmearImage, smear_upload_to, thumbnail_upload_to
from cases.validation import store_as_pixels
from tests.factories import (
    default_specimen,
    fill_the_disk,
    home_lab,
    pixels_digest,
    stored_smear_files,
)
from tests.images import image_bytes, upload

NOT_STORED = (
    "could not be stored on the server, and nothing of it was kept. Tell an administrator (the "
    "server log has the details)."
)


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="U-1", display_label="Up"
    )


@pytest.fixture
def other_patient(other_clinician):
    """A patient of another lab: content-addressed files are shared across labs."""
    return services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="U-2",
        display_label="B",
    )


def _assert_stored_whole(image):
    with default_storage.open(image.file.name, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == image.sha256
    with default_storage.open(image.thumbnail.name, "rb") as fh, Image.open(fh) as thumb:
        thumb.load()  # a truncated JPEG raises here


def test_a_save_cut_short_by_a_full_disk_leaves_no_partial_file(
    isolated_media, patient, clinician, monkeypatch
):
    """FileSystemStorage leaves what it wrote when the disk fills up. The partial file stayed
    under the content-hash name: the next upload of the same pixels reused it, the worker failed
    it as unreadable, and uploading it again was refused as a duplicate."""
    before = stored_smear_files()
    fill_the_disk(monkeypatch, on=pixels_digest(seed=41))
    with pytest.raises(OSError):
        services.smear_image_upload(
            specimen=default_specimen(patient), file=upload(seed=41), uploaded_by=clinician
        )
    monkeypatch.undo()
    assert stored_smear_files() == before

    image = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=41), uploaded_by=clinician
    )
    _assert_stored_whole(image)
    assert len(stored_smear_files()) == len(before) + 2


def test_a_damaged_copy_is_written_again_not_reused(patient, clinician, isolated_media):
    """A write cut short before this was checked (a crash) left a truncated file under the
    content-hash name; an upload of the same pixels reused it."""
    pixels = store_as_pixels(image_bytes(seed=42))
    names = SmearImage(sha256=pixels.sha256, format="PNG")
    for name, content in (
        (smear_upload_to(names, ""), pixels.content),
        (thumbnail_upload_to(names, ""), pixels.thumbnail),
    ):
        assert default_storage.save(name, ContentFile(content[:100])) == name

    image = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=42), uploaded_by=clinician
    )
    assert image.file.name == smear_upload_to(names, "")
    _assert_stored_whole(image)


def test_a_file_the_server_cannot_store_is_reported_and_the_others_are_stored(
    isolated_media, patient, clinician, monkeypatch, caplog
):
    """A storage error on one file of several ended the request on the error page, which said
    nothing was lost: the files before it were stored and queued, those after it were not, and
    nobody was told which."""
    before = stored_smear_files()
    fill_the_disk(
        monkeypatch, on=f"{pixels_digest(seed=52)}-320"
    )  # its pixels fit, not its thumbnail

    report = services.smear_images_upload(
        specimen=default_specimen(patient),
        files=[upload("a.png", seed=51), upload("b.png", seed=52), upload("c.png", seed=53)],
        uploaded_by=clinician,
    )

    assert sorted(i.original_name for i in report.stored) == ["a.png", "c.png"]
    assert report.rejected == [f"“b.png” {NOT_STORED}"]
    assert sorted(SmearImage.objects.values_list("original_name", flat=True)) == ["a.png", "c.png"]
    assert len(stored_smear_files()) == len(before) + 4  # a's and c's: nothing of b
    assert "No space left on device" in caplog.text  # the detail, for the administrator


def test_the_same_image_for_two_patients_is_stored_once(
    patient, clinician, other_clinician, other_patient
):
    first = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=21), uploaded_by=clinician
    )
    before = stored_smear_files()

    second = services.smear_image_upload(
        specimen=default_specimen(other_patient),
        file=upload("copy.png", seed=21),
        uploaded_by=other_clinician,
    )

    assert second.file.name == first.file.name
    assert stored_smear_files() == before


def test_a_failed_upload_never_deletes_a_file_another_image_uses(
    patient, clinician, other_clinician, other_patient
):
    first = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=22), uploaded_by=clinician
    )
    broken_save = mock.patch.object(SmearImage, "save", side_effect=RuntimeError("db went away"))
    with broken_save, pytest.raises(RuntimeError):
        services.smear_image_upload(
            specimen=default_specimen(other_patient),
            file=upload(seed=22),
            uploaded_by=other_clinician,
        )
    assert default_storage.exists(first.file.name)


@pytest.mark.django_db(transaction=True)
def test_a_failing_upload_never_deletes_the_file_a_concurrent_upload_reuses(
    patient, clinician, other_clinician, other_patient, monkeypatch
):
    """The same bytes for two patients at once; the first upload fails after writing the file.
    Its clean-up found no row using the file (the second upload's row was not committed yet)
    and deleted it: the second image was saved pointing at nothing (PostgreSQL; on SQLite the
    writing transactions already run one at a time)."""
    import threading

    from django.db import connection, connections

    from cases.services import uploads

    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions: PostgreSQL")
    first_stored, second_stored = threading.Event(), threading.Event()
    release_first, release_second = threading.Event(), threading.Event()
    original = uploads.audit_event_create

    def audit(**kwargs):  # runs after the files are stored, before the row commits
        if kwargs["patient"] == patient:
            first_stored.set()
            release_first.wait(30)
            raise RuntimeError("the first upload fails")
        second_stored.set()
        release_second.wait(30)
        return original(**kwargs)

    monkeypatch.setattr(uploads, "audit_event_create", audit)
    results = {}

    def run(key, target, user):
        try:
            results[key] = services.smear_image_upload(
                specimen=default_specimen(target), file=upload(seed=23), uploaded_by=user
            )
        except RuntimeError as exc:
            results[key] = exc
        finally:
            connections.close_all()

    first = threading.Thread(target=run, args=("first", patient, clinician))
    second = threading.Thread(target=run, args=("second", other_patient, other_clinician))
    first.start()
    assert first_stored.wait(30)
    second.start()  # finds the file the first one wrote
    # Old code: it got there at once; now it waits for the first upload to end.
    assert not second_stored.wait(2)
    release_first.set()  # the first one fails and cleans up
    assert second_stored.wait(30)
    release_second.set()
    first.join(30)
    second.join(30)
    assert isinstance(results["first"], RuntimeError)
    image = results["second"]
    assert default_storage.exists(image.file.name) and default_storage.exists(image.thumbnail.name)


def test_a_storage_fault_that_is_not_an_os_error_is_reported_the_same(
    isolated_media, patient, clinician, monkeypatch
):
    """An S3 bucket's errors are not OSErrors: the second file ended the request with the error
    page after the first was stored."""
    real_save, broken = FileSystemStorage._save, pixels_digest(seed=62)

    def save(storage, name, content):
        if broken in name:
            raise RuntimeError("Could not connect to the endpoint URL")  # as botocore's are
        return real_save(storage, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", save)
    report = services.smear_images_upload(
        specimen=default_specimen(patient),
        files=[upload("a.png", seed=61), upload("b.png", seed=62)],
        uploaded_by=clinician,
    )
    assert [i.original_name for i in report.stored] == ["a.png"]
    assert report.rejected == [f"“b.png” {NOT_STORED}"]
