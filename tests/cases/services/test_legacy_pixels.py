"""The data migration that re-stores images uploaded before uploads were reduced to pixels."""

import hashlib
import importlib

import numpy as np
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cases import services
from cases.models import SmearImage
from inference.decoding import decode_image
from tests.cases.services.test_uploads import _jpeg_with_metadata_and_trailer
from tests.factories import default_specimen, home_lab
from tests.images import upload

migration = importlib.import_module("cases.migrations.0003_store_pixels_only")


def _legacy_image(clinician, content: bytes, record="LEG-1") -> SmearImage:
    """A row as the old upload stored it: the uploaded bytes, byte for byte."""
    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number=record, display_label="L"
    )
    image = services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=3), uploaded_by=clinician
    )
    digest = hashlib.sha256(content).hexdigest()
    name = default_storage.save(f"smears/{digest[:2]}/{digest}.jpg", ContentFile(content))
    SmearImage.objects.filter(pk=image.pk).update(
        file=name, thumbnail="", sha256=digest, format="JPEG", original_format="",
        size_bytes=len(content),
    )  # fmt: skip
    return SmearImage.objects.get(pk=image.pk)


def test_legacy_images_are_restored_as_pixels_and_the_old_file_is_removed(clinician):
    original = _jpeg_with_metadata_and_trailer()
    legacy = _legacy_image(clinician, original)
    old_name = legacy.file.name

    migration.store_pixels_only(apps, None)

    image = SmearImage.objects.get(pk=legacy.pk)
    assert (image.format, image.original_format) == ("PNG", "JPEG")
    with default_storage.open(image.file.name, "rb") as fh:
        stored = fh.read()
    assert b"DOE" not in stored and b"<html" not in stored
    assert hashlib.sha256(stored).hexdigest() == image.sha256
    assert np.array_equal(decode_image(stored), decode_image(original))
    assert default_storage.exists(image.thumbnail.name)
    assert not default_storage.exists(old_name)


def test_an_unreadable_legacy_file_is_kept_as_it_was(clinician):
    legacy = _legacy_image(clinician, b"\xff\xd8 not really a jpeg")
    migration.store_pixels_only(apps, None)
    image = SmearImage.objects.get(pk=legacy.pk)
    assert (image.file.name, image.original_format) == (legacy.file.name, "")
    assert default_storage.exists(legacy.file.name)
