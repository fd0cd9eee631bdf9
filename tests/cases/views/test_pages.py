"""Every page: login required, scoped to the lab, research-use notice, navigation."""

import pytest
from django.urls import reverse

from cases import services
from tests.factories import home_lab

NOTICE = "Research use only: not a diagnostic device."
NOTICE_REST = "Results must not be used for clinical decisions."


def _page_urls(patient, image):
    return [
        reverse("cases:patient-list"),
        reverse("cases:patient-create"),
        reverse("cases:patient-detail", args=[patient.pk]),
        reverse("cases:patient-edit", args=[patient.pk]),
        reverse("cases:image-detail", args=[image.pk]),
        reverse("cases:specimen-detail", args=[image.specimen_id]),
        reverse("cases:review-queue"),
        reverse("cases:lab-list"),
    ]


def _all_urls(patient, image):
    return [
        *_page_urls(patient, image),
        reverse("cases:image-file", args=[image.pk]),
        reverse("cases:image-thumbnail", args=[image.pk]),
        reverse("cases:image-status", args=[image.pk]),
        reverse("cases:image-requeue", args=[image.pk]),
        reverse("cases:image-reclassify", args=[image.pk]),
    ]


def test_every_view_redirects_anonymous_users_to_login(client, patient, image):
    login = reverse("login")
    for url in _all_urls(patient, image):
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(f"{login}?next="), url


def test_another_labs_patient_and_images_do_not_exist(client, other_clinician, patient, image):
    client.force_login(other_clinician)
    lists = {reverse("cases:review-queue"), reverse("cases:lab-list")}
    for url in _all_urls(patient, image)[2:]:
        if url not in lists:
            assert client.get(url).status_code == 404, url
    for url in lists:  # their own lists, without this lab's objects
        page = client.get(url).text
        assert "S-" not in page and "Lab A" not in page, url
    for name, pk in [
        ("patient-detail", patient.pk),
        ("patient-edit", patient.pk),
        ("image-requeue", image.pk),
        ("image-reclassify", image.pk),
        ("image-verdict", image.pk),
        ("specimen-detail", image.specimen_id),
        ("specimen-sign", image.specimen_id),
    ]:
        assert client.post(reverse(f"cases:{name}", args=[pk])).status_code == 404, name
    assert patient.display_label not in client.get(reverse("cases:patient-list")).text


def test_staff_see_every_patient(client, admin_user, patient, image):
    """Administrators see every lab's data; editing it is for the lab's clinical members."""
    client.force_login(admin_user)
    clinical = {reverse("cases:patient-edit", args=[patient.pk]), reverse("cases:patient-create")}
    for url in _page_urls(patient, image):
        assert client.get(url).status_code == (403 if url in clinical else 200), url
    page = client.get(reverse("cases:patient-list")).text
    assert "Patient A-17" in page
    assert 'href="/admin/"' in page  # the Admin link is for staff only


def test_research_notice_is_on_every_page(client, clinician_client, patient, image):
    for url in _page_urls(patient, image):
        page = clinician_client.get(url).text
        assert NOTICE in page and NOTICE_REST in page, url
    clinician_client.logout()
    login_page = client.get(reverse("login")).text
    assert NOTICE in login_page and NOTICE_REST in login_page


def test_header_has_navigation_and_a_logout_form(clinician_client):
    page = clinician_client.get(reverse("cases:patient-list")).text
    assert f'href="{reverse("cases:patient-create")}"' in page
    assert 'href="/api/docs/"' in page
    assert 'href="/admin/"' not in page  # not staff
    assert "dr_ada" in page
    assert f'<form method="post" action="{reverse("logout")}"' in page
    assert 'href="/static/css/portal.css"' in page


def test_login_page_logs_in_and_lands_on_the_patient_list(client, clinician):
    page = client.get(reverse("login"))
    assert 'name="username"' in page.text and 'name="password"' in page.text
    response = client.post(
        reverse("login"), {"username": "dr_ada", "password": "pw-ada-123456"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("cases:patient-list")
    assert "No patients yet" in response.text


def test_login_page_reports_wrong_credentials(client, clinician):
    response = client.post(reverse("login"), {"username": "dr_ada", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.text


def test_logout_is_a_post(clinician_client):
    response = clinician_client.post(reverse("logout"))
    assert response.status_code == 302
    assert clinician_client.get(reverse("cases:patient-list")).status_code == 302


def test_patient_list_shows_counts_and_last_upload(clinician_client, patient, image):
    page = clinician_client.get(reverse("cases:patient-list")).text
    assert "Patient A-17" in page
    assert "MRN-100" in page
    assert '<td class="num">1</td>' in page
    assert image.uploaded_at.strftime("%Y-%m-%d") in page


def test_patient_list_search_by_record_number_or_label(clinician_client, clinician, patient):
    services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="XYZ-9",
        display_label="Other child",
    )
    url = reverse("cases:patient-list")
    by_number = clinician_client.get(url, {"q": "xyz"}).text
    assert "Other child" in by_number and "Patient A-17" not in by_number
    by_label = clinician_client.get(url, {"q": "a-17"}).text
    assert "Patient A-17" in by_label and "Other child" not in by_label
    nothing = clinician_client.get(url, {"q": "nobody"}).text
    assert "No patient matches “nobody”" in nothing


def test_patient_list_paginates_and_keeps_the_search(clinician_client, clinician):
    for i in range(25):
        services.patient_create(
            lab=home_lab(clinician),
            created_by=clinician,
            record_number=f"P-{i:02d}",
            display_label=f"Kid {i}",
        )
    url = reverse("cases:patient-list")
    first = clinician_client.get(url, {"q": "Kid"})
    assert len(first.context["patients"]) == 20
    assert "Page 1 of 2" in first.text
    assert 'href="?page=2&amp;q=Kid"' in first.text
    second = clinician_client.get(url, {"q": "Kid", "page": 2})
    assert len(second.context["patients"]) == 5


def test_empty_patient_list_invites_to_register(clinician_client):
    page = clinician_client.get(reverse("cases:patient-list")).text
    assert "No patients yet" in page
    assert "Register the first patient" in page


@pytest.mark.parametrize("name", ["image-requeue", "image-reclassify"])
def test_action_urls_only_lead_back_on_get(clinician_client, image, name):
    response = clinician_client.get(reverse(f"cases:{name}", args=[image.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("cases:image-detail", args=[image.pk])


def test_a_bad_request_is_not_titled_as_a_permission_refusal(clinician_client, clinician):
    """A CSV date range with 'from' after 'to' answered a page headed "Not allowed"."""
    url = reverse("cases:lab-images-csv", args=[home_lab(clinician).pk])
    response = clinician_client.get(url, {"from": "2026-02-01", "to": "2026-01-01"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "<h1>Check the request</h1>" in page and "Not allowed" not in page
