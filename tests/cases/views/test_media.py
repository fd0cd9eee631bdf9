"""Smear images are served only through the authorised views: pixels only, under a name made
from the content type, never cached, never sniffed; every read is audited."""

import io

import numpy as np
from django.urls import reverse
from PIL import Image

from cases import services
from cases.models import AuditEvent
from inference.decoding import decode_image
from tests.factories import default_specimen
from tests.images import image_bytes, upload

NO_STORE = {"no-store", "no-cache", "max-age=0", "must-revalidate", "private"}


def _body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def _cache_control(response) -> set[str]:
    return {part.strip() for part in response["Cache-Control"].split(",")}


def test_original_file_is_streamed_with_safe_headers(clinician_client, clinician, image):
    response = clinician_client.get(reverse("cases:image-file", args=[image.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert _cache_control(response) == NO_STORE
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == f'inline; filename="image-{image.pk}.png"'
    assert np.array_equal(decode_image(_body(response)), decode_image(image_bytes(seed=1)))
    read = AuditEvent.objects.get(event_type=AuditEvent.EventType.IMAGE_FILE_READ)
    assert (read.acting_user, read.image_id, read.ip_address) == (clinician, image.pk, "127.0.0.1")


def test_a_file_uploaded_with_a_misleading_name_is_served_under_a_safe_one(
    clinician_client, clinician, patient
):
    """``double.jpg.exe`` used to be served under that name."""
    jpeg = services.smear_image_upload(
        specimen=default_specimen(patient),
        file=upload("double.jpg.exe", image_bytes("JPEG", seed=5)),
        uploaded_by=clinician,
    )
    response = clinician_client.get(reverse("cases:image-file", args=[jpeg.pk]))
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == f'inline; filename="image-{jpeg.pk}.png"'
    assert np.array_equal(decode_image(_body(response)), decode_image(image_bytes("JPEG", seed=5)))


def test_unchanged_file_answers_not_modified(clinician_client, image):
    url = reverse("cases:image-file", args=[image.pk])
    etag = clinician_client.get(url)["ETag"]
    response = clinician_client.get(url, headers={"if-none-match": etag})
    assert response.status_code == 304
    assert _cache_control(response) == NO_STORE


def test_thumbnail_is_a_small_jpeg_made_once_at_upload(clinician_client, clinician, patient):
    big = services.smear_image_upload(
        specimen=default_specimen(patient),
        file=upload("big.png", image_bytes(size=800, seed=6)),
        uploaded_by=clinician,
    )
    assert big.thumbnail.name  # stored with the upload: reading it decodes nothing
    response = clinician_client.get(reverse("cases:image-thumbnail", args=[big.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert _cache_control(response) == NO_STORE
    assert response["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(_body(response))) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 320


def test_an_image_without_a_stored_thumbnail_gets_one_on_first_request(clinician_client, image):
    type(image).objects.filter(pk=image.pk).update(thumbnail="")
    first = clinician_client.get(reverse("cases:image-thumbnail", args=[image.pk]))
    assert first.status_code == 200
    image.refresh_from_db()
    assert image.thumbnail.name.endswith("-320.jpg")


def test_a_tiff_is_stored_and_shown_as_png(clinician_client, clinician, patient):
    tiff = services.smear_image_upload(
        specimen=default_specimen(patient),
        file=upload("x.tif", image_bytes("TIFF", seed=7)),
        uploaded_by=clinician,
    )
    page = clinician_client.get(reverse("cases:image-detail", args=[tiff.pk])).text
    assert reverse("cases:image-file", args=[tiff.pk]) in page
    assert clinician_client.get(reverse("cases:image-file", args=[tiff.pk]))["Content-Type"] == (
        "image/png"
    )


def test_media_is_not_reachable_by_another_clinician(client, other_clinician, image):
    client.force_login(other_clinician)
    assert client.get(reverse("cases:image-file", args=[image.pk])).status_code == 404
    assert client.get(reverse("cases:image-thumbnail", args=[image.pk])).status_code == 404
