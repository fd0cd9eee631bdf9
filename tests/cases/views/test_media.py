"""Smear images are served only through the authorised views, with private, non-sniffable
responses."""

import io

from django.urls import reverse
from PIL import Image

from cases import services
from tests.images import image_bytes, upload


def _body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_original_file_is_streamed_with_safe_headers(clinician_client, image):
    response = clinician_client.get(reverse("cases:image-file", args=[image.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'inline; filename="field-1.png"'
    assert _body(response) == image_bytes(seed=1)


def test_a_jpeg_is_served_as_jpeg(clinician_client, clinician, patient):
    jpeg = services.smear_image_upload(
        patient=patient, file=upload("x.jpg", image_bytes("JPEG", seed=5)), uploaded_by=clinician
    )
    response = clinician_client.get(reverse("cases:image-file", args=[jpeg.pk]))
    assert response["Content-Type"] == "image/jpeg"
    assert _body(response) == image_bytes("JPEG", seed=5)


def test_unchanged_file_answers_not_modified(clinician_client, image):
    url = reverse("cases:image-file", args=[image.pk])
    etag = clinician_client.get(url)["ETag"]
    response = clinician_client.get(url, headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response["Cache-Control"] == "private"


def test_thumbnail_is_a_small_jpeg(clinician_client, clinician, patient):
    big = services.smear_image_upload(
        patient=patient,
        file=upload("big.png", image_bytes(size=800, seed=6)),
        uploaded_by=clinician,
    )
    response = clinician_client.get(reverse("cases:image-thumbnail", args=[big.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private"
    assert response["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 320
    large = clinician_client.get(reverse("cases:image-thumbnail", args=[big.pk]), {"size": "large"})
    with Image.open(io.BytesIO(large.content)) as preview:
        assert preview.size == (800, 800)  # never enlarged


def test_a_tiff_is_shown_through_a_preview(clinician_client, clinician, patient):
    tiff = services.smear_image_upload(
        patient=patient, file=upload("x.tif", image_bytes("TIFF", seed=7)), uploaded_by=clinician
    )
    page = clinician_client.get(reverse("cases:image-detail", args=[tiff.pk])).text
    assert reverse("cases:image-thumbnail", args=[tiff.pk]) + "?size=large" in page
    assert clinician_client.get(reverse("cases:image-file", args=[tiff.pk]))["Content-Type"] == (
        "image/tiff"
    )


def test_media_is_not_reachable_by_another_clinician(client, other_clinician, image):
    client.force_login(other_clinician)
    assert client.get(reverse("cases:image-file", args=[image.pk])).status_code == 404
    assert client.get(reverse("cases:image-thumbnail", args=[image.pk])).status_code == 404
