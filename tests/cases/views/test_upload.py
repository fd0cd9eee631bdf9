"""The upload form on the specimen page: several files at once, each checked by the service,
every rejection shown on the form, nothing half-stored."""

import pytest
from django.conf import settings
from django.urls import reverse

from cases.models import AuditEvent, SmearImage
from tests.factories import default_specimen, fill_the_disk, pixels_digest, stored_smear_files
from tests.images import image_bytes, upload


def _post(client, patient, *files):
    url = reverse("cases:specimen-detail", args=[default_specimen(patient).pk])
    return client.post(url, {"images": list(files)})


def _errors(response):
    return response.context["form"].errors.get("images", [])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"these are not pixels", "“notes.png” is not an image"),
        ("empty.jpg", b"", "“empty.jpg” is empty."),
        ("cut.jpg", image_bytes("JPEG", size=256)[:600], "“cut.jpg” is damaged or truncated"),
    ],
    ids=["not-an-image", "empty", "truncated-jpeg"],
)
def test_a_rejected_file_is_explained_and_nothing_is_stored(
    clinician_client, patient, name, content, message
):
    files_before = stored_smear_files()

    response = _post(clinician_client, patient, upload(name, content))

    assert response.status_code == 200
    errors = _errors(response)
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert message in response.content.decode()
    assert "No file was stored." in response.content.decode()
    assert not SmearImage.objects.exists()
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_UPLOADED).exists()
    assert stored_smear_files() == files_before


def test_a_file_over_the_size_limit_is_rejected(clinician_client, patient, settings):
    settings.LP_MAX_UPLOAD_BYTES = 1000
    files_before = stored_smear_files()
    content = image_bytes("PNG", size=128)
    assert len(content) > 1000

    response = _post(clinician_client, patient, upload("big.png", content))

    assert _errors(response) == [
        f"“big.png” is {len(content) / 1024:.1f}\xa0KB; the limit is 1000\xa0bytes."
    ]
    assert not SmearImage.objects.exists()
    assert stored_smear_files() == files_before


def test_several_files_are_stored_at_once(clinician_client, patient):
    response = _post(
        clinician_client,
        patient,
        upload("a.png", seed=11),
        upload("b.jpg", image_bytes("JPEG", seed=12)),
        upload("c.png", seed=13),
    )
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "cases:specimen-detail", args=[default_specimen(patient).pk]
    )
    images = SmearImage.objects.filter(patient=patient)
    assert sorted(images.values_list("original_name", flat=True)) == ["a.png", "b.jpg", "c.png"]
    assert set(images.values_list("status", flat=True)) == {"queued"}
    page = clinician_client.get(response["Location"]).content.decode()
    assert "3 images stored and queued for classification." in page
    for name in ("a.png", "b.jpg", "c.png"):
        assert name in page


def test_one_file_leads_back_to_the_specimen_with_its_row(clinician_client, patient):
    response = _post(clinician_client, patient, upload("single.png", seed=21))
    image = SmearImage.objects.get()
    page = clinician_client.get(response["Location"]).text
    assert "1 image stored and queued for classification." in page
    assert reverse("cases:image-detail", args=[image.pk]) in page


def test_valid_files_are_stored_and_each_rejected_one_is_listed(clinician_client, patient):
    response = _post(
        clinician_client,
        patient,
        upload("good.png", seed=31),
        upload("bad.png", b"nope"),
        upload("void.png", b""),
    )
    assert response.status_code == 200
    errors = _errors(response)
    assert errors[0].startswith("“bad.png” is not an image")
    assert errors[1] == "“void.png” is empty."
    page = response.content.decode()
    assert "1 file stored and queued for classification;" in page
    assert "2 rejected" in page
    assert list(SmearImage.objects.values_list("original_name", flat=True)) == ["good.png"]
    # the stored image already shows in the history table under the form
    assert "good.png" in page


def test_a_file_the_server_cannot_store_is_listed_with_the_others_stored(
    isolated_media, clinician_client, patient, monkeypatch
):
    """A full disk on the second of three files showed the error page ("Nothing you uploaded is
    lost"), though the first was stored and queued and the third was never tried."""
    before = stored_smear_files()
    fill_the_disk(monkeypatch, on=pixels_digest(seed=62))

    response = _post(
        clinician_client,
        patient,
        upload("one.png", seed=61),
        upload("two.png", seed=62),
        upload("three.png", seed=63),
    )

    assert response.status_code == 200
    assert _errors(response) == [
        "“two.png” could not be stored on the server, and nothing of it was kept. Tell an "
        "administrator (the server log has the details)."
    ]
    page = response.content.decode()
    assert "2 files stored and queued for classification;" in page and "1 rejected" in page
    assert str(settings.MEDIA_ROOT) not in page and "Errno" not in page
    names = SmearImage.objects.values_list("original_name", flat=True)
    assert sorted(names) == ["one.png", "three.png"]
    assert len(stored_smear_files()) == len(before) + 4  # nothing of two.png


def test_the_same_image_twice_is_reported(clinician_client, patient, image):
    response = _post(clinician_client, patient, upload("again.png", seed=1))
    assert _errors(response) == ["“again.png” was already uploaded for this patient."]
    assert SmearImage.objects.count() == 1


def test_no_file_chosen(clinician_client, patient):
    response = _post(clinician_client, patient)
    assert _errors(response) == ["Choose at least one image file."]


def test_the_upload_form_accepts_several_images(clinician_client, patient):
    url = reverse("cases:specimen-detail", args=[default_specimen(patient).pk])
    page = clinician_client.get(url).text
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file" name="images"' in page
    assert 'accept="image/*"' in page
    assert " multiple" in page
