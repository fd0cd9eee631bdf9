"""Smear images in the admin: listing, search, filters, and the requeue action."""

import re
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from cases.models import AuditEvent, SmearImage
from inference.models import ModelVersion
from tests.factories import make_image, make_model_version, make_prediction

CHANGELIST = reverse("admin:cases_smearimage_changelist")


def listed(client, **query):
    response = client.get(CHANGELIST, query)
    assert response.status_code == 200
    return {i.pk for i in response.context["cl"].result_list}


def requeue(client, *images):
    return client.post(
        CHANGELIST,
        {"action": "requeue", "_selected_action": [i.pk for i in images]},
        follow=True,
    )


def test_the_changelist_shows_status_patient_uploader_and_attempts(admin_client_logged_in, image):
    SmearImage.objects.filter(pk=image.pk).update(attempts=3)

    html = admin_client_logged_in.get(CHANGELIST).content.decode()

    for text in ("admin-field.png", "MRN-ADM-1", "dr_ada", "Queued", ">3<"):
        assert text in html, text


@pytest.mark.parametrize("term", ["MRN-ADM-1", "admin-field", "SHA"])
def test_search_by_record_number_original_name_or_sha256(
    admin_client_logged_in, image, patient, clinician, term
):
    make_image(patient, clinician, seed=102, name="other.png")
    term = image.sha256 if term == "SHA" else term
    found = listed(admin_client_logged_in, q=term)
    if term == "MRN-ADM-1":
        assert image.pk in found and len(found) == 2
    else:
        assert found == {image.pk}


def test_filter_by_status(admin_client_logged_in, image, patient, clinician):
    failed = make_image(patient, clinician, seed=103)
    SmearImage.objects.filter(pk=failed.pk).update(status=SmearImage.Status.FAILED)

    assert listed(admin_client_logged_in, status__exact="failed") == {failed.pk}
    assert listed(admin_client_logged_in, status__exact="queued") == {image.pk}


def test_requeue_action_queues_failed_and_finished_images(
    admin_client_logged_in,
    admin_user,
    image,
    patient,
    clinician,
    django_capture_on_commit_callbacks,
):
    SmearImage.objects.filter(pk=image.pk).update(
        status=SmearImage.Status.FAILED, error_message="broken"
    )
    done = make_image(patient, clinician, seed=104)
    make_prediction(done)  # by a retired version
    make_model_version(status=ModelVersion.Status.ACTIVE)  # a newer one is active

    with (
        mock.patch("cases.tasks.classify_image.apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = requeue(admin_client_logged_in, image, done)

    assert response.status_code == 200
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "2 images were queued for classification."
    ]
    for queued in (image, done):
        queued.refresh_from_db()
        assert (queued.status, queued.error_message, queued.attempts) == ("queued", "", 0)
    assert sorted(c.kwargs["args"][0] for c in send.call_args_list) == sorted([image.pk, done.pk])
    events = AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_REQUEUED)
    assert {(e.image_id, e.acting_user_id) for e in events} == {
        (image.pk, admin_user.pk),
        (done.pk, admin_user.pk),
    }


def test_requeue_says_truthfully_what_it_left_alone_and_why(admin_client_logged_in, image):
    SmearImage.objects.filter(pk=image.pk).update(enqueued_at=timezone.now())

    response = requeue(admin_client_logged_in, image)

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Left as they were (images {image.pk}): This image is waiting in the queue and will "
        "be classified shortly."
    ]
    assert not AuditEvent.objects.filter(event_type=AuditEvent.EventType.IMAGE_REQUEUED).exists()


def test_images_are_read_only_and_cannot_be_deleted(admin_client_logged_in, image):
    change_url = reverse("admin:cases_smearimage_change", args=[image.pk])

    assert admin_client_logged_in.get(reverse("admin:cases_smearimage_add")).status_code == 403
    page = admin_client_logged_in.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert reverse("cases:image-file", kwargs={"pk": image.pk}) in page.content.decode()
    assert admin_client_logged_in.post(change_url, {"status": "done"}).status_code == 403
    delete_url = reverse("admin:cases_smearimage_delete", args=[image.pk])
    assert admin_client_logged_in.post(delete_url, {"post": "yes"}).status_code == 403
    assert SmearImage.objects.filter(pk=image.pk, status="queued").exists()


def test_the_image_page_shows_its_predictions_read_only(admin_client_logged_in, image):
    prediction = make_prediction(image, member_labels=["Early"] * 3 + ["Pro"] * 2)

    page = admin_client_logged_in.get(reverse("admin:cases_smearimage_change", args=[image.pk]))

    html = page.content.decode()
    assert "Early" in html and "3/5" in html
    assert reverse("admin:cases_prediction_change", args=[prediction.pk]) in html
    [formset] = page.context["inline_admin_formsets"]
    assert not formset.has_add_permission
    assert not formset.has_change_permission
    assert not formset.has_delete_permission


def test_staff_without_the_change_permission_cannot_requeue(client, django_user_model, image):
    SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.FAILED)
    staff = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_smearimage"))
    client.force_login(staff)

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert 'value="requeue"' not in page.content.decode()
    requeue(client, image)
    image.refresh_from_db()
    assert image.status == SmearImage.Status.FAILED


def test_the_image_page_is_titled_by_number_and_shows_the_thumbnail(admin_client_logged_in, image):
    page = admin_client_logged_in.get(reverse("admin:cases_smearimage_change", args=[image.pk]))

    html = page.content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    breadcrumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S).group(1)
    subtitle = re.search(r"<h2>(.*?)</h2>", html, re.S).group(1)
    # In the public dataset the file name carries the true class: never in the page's title.
    for text in (title, breadcrumbs, subtitle):
        assert "admin-field" not in text
        assert f"Image #{image.pk}" in text
    thumbnail = reverse("cases:image-thumbnail", kwargs={"pk": image.pk})
    assert (
        f'<img src="{thumbnail}" alt="Thumbnail of Image #{image.pk}" class="lp-thumbnail">' in html
    )
    assert f'href="{reverse("cases:image-detail", kwargs={"pk": image.pk})}"' in html
    assert "admin/portal-admin.css" in html
    # the thumbnail it links to is served to the admin (staff see every image)
    assert admin_client_logged_in.get(thumbnail)["Content-Type"] == "image/jpeg"


def test_the_image_history_page_is_titled_by_number(admin_client_logged_in, image):
    page = admin_client_logged_in.get(reverse("admin:cases_smearimage_history", args=[image.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    head = html.split('<div id="content-main">')[0]
    assert "admin-field" not in head
    assert f"Change history: Image #{image.pk}" in head


def test_long_file_names_are_cut_in_the_changelist(admin_client_logged_in, patient, clinician):
    long_name = "x" * 120 + "-Pro-B.png"
    make_image(patient, clinician, seed=105, name=long_name)

    html = admin_client_logged_in.get(CHANGELIST).content.decode()

    assert f'<span class="lp-truncate" title="{long_name}">{long_name}</span>' in html


@pytest.mark.django_db(transaction=True)  # the send runs at commit, as in a request
def test_requeue_action_says_which_images_wait_for_the_queue(admin_client_logged_in, image):
    """It said "1 image was queued for classification." and nothing else with the broker down."""
    SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.FAILED)
    with mock.patch(
        "cases.tasks.classify_image.apply_async", side_effect=OperationalError("refused")
    ):
        response = requeue(admin_client_logged_in, image)
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert shown[0] == "1 image was queued for classification."
    assert shown[1].startswith(f"Images {image.pk}: The image is queued again, but the")
