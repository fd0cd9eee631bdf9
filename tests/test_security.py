"""The default deployment is safe: no debug pages, own error pages, JSON API errors, lockout,
expiring tokens, idle sessions, security headers, a clean ``check --deploy``.

Each test is an auditor's finding that the old code failed.
"""

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from cases.models import AuditEvent, SmearImage
from tests.factories import default_specimen, home_lab
from tests.images import upload

TOKEN_URL = "/api/v1/auth/token/"
LOGIN_URL = "/accounts/login/"


# --- Error pages --------------------------------------------------------------------------


def test_a_mistyped_url_shows_the_projects_own_404_page(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "Research use only" in html
    assert "URLconf" not in html and "api/v1/" not in html  # no list of URL patterns


def test_an_unknown_api_url_answers_json(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_too_many_files_is_a_json_error_that_echoes_nothing(client, clinician, patient_of):
    """It used to show Django's debug page, echoing the Authorization header and cookies."""
    token = Token.objects.create(user=clinician)
    patient = patient_of(clinician)
    files = [upload(f"{i}.png", seed=i) for i in range(settings.LP_MAX_FILES_PER_UPLOAD + 1)]
    response = client.post(
        f"/api/v1/specimens/{default_specimen(patient).pk}/images/",
        {"files": files},
        headers={"authorization": f"Token {token.key}"},
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "at most 50" in response.json()["detail"]
    assert token.key not in response.content.decode()


def test_too_large_a_request_body_is_a_json_error(client, clinician, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = Token.objects.create(user=clinician)
    response = client.post(
        "/api/v1/patients/",
        data='{"record_number": "' + "x" * 5000 + '"}',
        content_type="application/json",
        headers={"authorization": f"Token {token.key}"},
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large."}


def test_too_many_files_on_the_page_says_what_to_do_in_the_sites_layout(clinician, patient_of):
    """Django refuses the files while the CSRF check reads the form, before the view: the page
    was a bare "Bad Request (400)". (A client that skips the CSRF check hid this.)"""
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    patient = patient_of(clinician)
    url = reverse("cases:specimen-detail", args=[default_specimen(patient).pk])
    page = client.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    files = [upload(f"{i}.png", seed=i) for i in range(settings.LP_MAX_FILES_PER_UPLOAD + 1)]

    response = client.post(url, {"csrfmiddlewaretoken": token, "images": files})

    html = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was saved" in html and "send at most 50 at a time" in html
    assert "Research use only" in html and "dr_ada" in html  # the site's page, signed in
    assert f'href="{url}"' in html  # the way back to the upload form
    assert not SmearImage.objects.exists()


@pytest.fixture
def patient_of(db):
    from cases import services

    def make(user):
        return services.patient_create(
            lab=home_lab(user), created_by=user, record_number="SEC-1", display_label="S"
        )

    return make


# --- Sign-in lockout ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [LOGIN_URL, "/admin/login/"])
def test_password_guessing_on_the_login_pages_locks_out_even_the_right_password(
    client, clinician, admin_user, url
):
    """30 wrong passwords in 11 s, then the right one, used to log in."""
    username = "dr_ada" if url == LOGIN_URL else "admin"
    password = "pw-ada-123456" if url == LOGIN_URL else "pw-admin-123456"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": username, "password": "guess"})
    response = client.post(url, {"username": username, "password": password})
    assert response.status_code == 429
    assert "Sign-in blocked" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_address_too(client, clinician, other_clinician):
    for name in ("x1", "x2", "x3", "x4", "x5"):
        client.post(LOGIN_URL, {"username": name, "password": "guess"})
    response = client.post(LOGIN_URL, {"username": "dr_bob", "password": "pw-bob-123456"})
    assert response.status_code == 429


def test_the_cool_down_is_bounded(client, clinician):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN_URL, {"username": "dr_ada", "password": "guess"})
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=past)
    response = client.post(LOGIN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})
    assert response.status_code == 302  # signed in
    assert client.session["_auth_user_id"] == str(clinician.pk)


# --- Tokens and sessions ------------------------------------------------------------------


def test_an_api_token_expires(client, clinician):
    token = Token.objects.create(user=clinician)
    Token.objects.filter(pk=token.pk).update(
        created=timezone.now() - settings.LP_API_TOKEN_TTL - timedelta(seconds=1)
    )
    response = client.get("/api/v1/patients/", headers={"authorization": f"Token {token.key}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    fresh = client.post(TOKEN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})
    assert fresh.status_code == 200 and fresh.json()["token"] != token.key


def test_a_token_dies_at_logout_and_can_be_revoked(client, clinician):
    key = client.post(TOKEN_URL, {"username": "dr_ada", "password": "pw-ada-123456"}).json()[
        "token"
    ]
    auth = {"authorization": f"Token {key}"}
    assert client.get("/api/v1/patients/", headers=auth).status_code == 200
    client.force_login(clinician)
    client.post("/accounts/logout/")
    assert client.get("/api/v1/patients/", headers=auth).status_code == 401

    key = client.post(TOKEN_URL, {"username": "dr_ada", "password": "pw-ada-123456"}).json()[
        "token"
    ]
    auth = {"authorization": f"Token {key}"}
    assert client.post("/api/v1/auth/token/revoke/", headers=auth).status_code == 204
    assert client.get("/api/v1/patients/", headers=auth).status_code == 401
    kinds = set(AuditEvent.objects.values_list("event_type", flat=True))
    assert {AuditEvent.EventType.TOKEN_ISSUED, AuditEvent.EventType.TOKEN_REVOKED} <= kinds


def test_sessions_end_after_30_idle_minutes_and_at_browser_close(client, clinician):
    client.post(LOGIN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["expires"] == "" and cookie["max-age"] == ""  # a browser-session cookie
    assert cookie["httponly"]


def test_a_status_poll_does_not_keep_an_idle_session_alive(client, clinician):
    """A page left open on an image that waits polls its status every few seconds: that kept
    the session from ever expiring on an unattended workstation. A person's request does."""
    from django.contrib.sessions.models import Session

    from cases import services
    from tests.factories import make_image

    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="S-1", display_label="S"
    )
    image = make_image(patient, clinician, seed=91)  # queued: its page keeps polling
    client.post(LOGIN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})
    session = Session.objects.get()
    earlier = timezone.now() + timedelta(minutes=5)  # as if the last request was long ago
    Session.objects.filter(pk=session.pk).update(expire_date=earlier)

    poll = client.get(reverse("cases:image-status", args=[image.pk]))
    assert poll.status_code == 200
    assert Session.objects.get().expire_date == earlier
    assert client.get(reverse("cases:image-detail", args=[image.pk])).status_code == 200
    assert Session.objects.get().expire_date > earlier + timedelta(minutes=20)


# --- Audit of sign-ins ------------------------------------------------------------------


def test_sign_ins_failures_and_sign_outs_are_audited_with_the_address(client, clinician):
    client.post(LOGIN_URL, {"username": "dr_ada", "password": "wrong"})
    client.post(LOGIN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})
    client.post("/accounts/logout/")
    events = list(AuditEvent.objects.order_by("id"))
    EventType = AuditEvent.EventType
    assert [e.event_type for e in events] == [
        EventType.LOGIN_FAILED,
        EventType.LOGIN_SUCCEEDED,
        EventType.LOGOUT,
    ]
    assert {e.ip_address for e in events} == {"127.0.0.1"}
    assert events[0].extra_data == {"username": "dr_ada"} and events[0].acting_user is None
    assert events[1].acting_user == clinician


def test_the_audit_log_is_append_only(clinician):
    from cases.models import AppendOnlyError

    event = AuditEvent.objects.create(event_type=AuditEvent.EventType.LOGOUT, acting_user=clinician)
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(extra_data={})
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_the_admin_can_filter_and_export_the_audit_log_but_not_change_it(
    client, admin_user, clinician
):
    AuditEvent.objects.create(
        event_type=AuditEvent.EventType.LOGIN_FAILED, extra_data={"username": "=HYPERLINK(1)"}
    )
    client.force_login(admin_user)
    changelist = reverse("admin:cases_auditevent_changelist")
    event = AuditEvent.objects.first()
    assert client.get(reverse("admin:cases_auditevent_change", args=[event.pk])).status_code == 200
    assert client.post(reverse("admin:cases_auditevent_delete", args=[event.pk])).status_code == 403
    assert client.get(changelist, {"event_type__exact": 2}).status_code == 200
    selected = [e.pk for e in AuditEvent.objects.all()]
    response = client.post(changelist, {"action": "export_csv", "_selected_action": selected})
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines()[0] == "time,event,user,address,patient_record_number,image_id,details"
    assert "Sign-in failed" in text
    assert "delete_selected" not in client.get(changelist).content.decode()
    exported = AuditEvent.objects.get(event_type=AuditEvent.EventType.CSV_EXPORTED)
    assert exported.acting_user == admin_user  # taking the log out is itself on the log
    assert exported.extra_data["audit_events"] == len(selected)


def test_staff_reads_of_sign_offs_and_reports_in_the_admin_are_audited(
    client, admin_user, clinician
):
    """The sign-off and report lists show every lab's interpretations: read without a trace."""
    from cases import services
    from cases.models import SignOff
    from tests.factories import make_image, make_prediction

    patient = services.patient_create(
        lab=home_lab(clinician), created_by=clinician, record_number="A-9", display_label="A"
    )
    image = make_image(patient, clinician, seed=92)
    make_prediction(image, member_labels=["Pro"] * 5)
    services.verdict_record(image=image, user=clinician, kind="confirm")
    services.specimen_sign_out(specimen=image.specimen, user=clinician, interpretation="Pro")
    sign_off = SignOff.objects.get()
    client.force_login(admin_user)
    for url in (
        reverse("admin:cases_signoff_changelist"),
        reverse("admin:cases_signoff_change", args=[sign_off.pk]),
        reverse("admin:cases_casereport_changelist"),
        reverse("admin:cases_casereport_change", args=[sign_off.report.pk]),
    ):
        assert client.get(url).status_code == 200
    EventType = AuditEvent.EventType
    reads = AuditEvent.objects.filter(
        acting_user=admin_user,
        event_type__in=(EventType.SPECIMEN_LIST_VIEWED, EventType.SPECIMEN_VIEWED),
    ).values_list("event_type", "specimen")
    assert sorted(reads) == sorted(
        [
            (EventType.SPECIMEN_LIST_VIEWED, None),
            (EventType.SPECIMEN_VIEWED, image.specimen_id),
            (EventType.SPECIMEN_LIST_VIEWED, None),
            (EventType.SPECIMEN_VIEWED, image.specimen_id),
        ]
    )


# --- Headers -----------------------------------------------------------------------------


def test_pages_carry_a_csp_without_inline_script_and_no_store(client, clinician):
    client.force_login(clinician)
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "no-store" in response["Cache-Control"]
    assert "<script>" not in response.content.decode()  # nothing inline


def test_api_answers_are_not_stored_but_static_files_may_be(client, clinician):
    client.force_login(clinician)
    assert "no-store" in client.get("/api/v1/patients/")["Cache-Control"]
    assert "no-store" not in client.get("/static/css/portal.css").get("Cache-Control", "")


# --- Settings ------------------------------------------------------------------------------


PRODUCTION_VARIABLES = {
    "DJANGO_SETTINGS_MODULE": "leukemia_portal.settings.prod",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-with-enough-entropy-0123456789",
    "DATABASE_URL": "postgres://portal@127.0.0.1:5432/portal",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_ALLOWED_HOSTS": "portal.example.org",
}


def _manage(*args, **env):
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LP_", "DATABASE"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_variables(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        LP_VAR_DIR=str(tmp_path),
        **PRODUCTION_VARIABLES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_run_commands_settings_have_debug_off_and_keep_a_generated_secret(tmp_path):
    code = "from django.conf import settings as s; print(s.DEBUG, s.SECRET_KEY)"
    first = _manage("shell", "-c", code, LP_VAR_DIR=str(tmp_path))
    second = _manage("shell", "-c", code, LP_VAR_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    debug, key = first.stdout.split()[-2:]  # after Django's "objects imported" line
    assert debug == "False" and len(key) >= 50
    assert second.stdout.split()[-1] == key  # the same key on the next start
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


@override_settings(DEBUG=False)
def test_a_wrong_host_header_gets_a_plain_400(client, db):
    response = client.get("/", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert "DisallowedHost" not in response.content.decode()


def test_the_client_address_comes_from_the_trusted_proxy_only(rf, settings):
    from leukemia_portal.middleware import client_address

    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    settings.LP_TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "10.0.0.2"  # a client-sent header is not trusted
    settings.LP_TRUSTED_PROXY_COUNT = 1
    assert client_address(request) == "198.51.100.7"  # what our one proxy saw, not the spoof


def test_a_stale_token_does_not_stand_in_the_way_of_a_new_one(client, clinician):
    token = Token.objects.create(user=clinician)
    Token.objects.filter(pk=token.pk).update(
        created=timezone.now() - settings.LP_API_TOKEN_TTL - timedelta(seconds=1)
    )
    response = client.post(
        TOKEN_URL,
        {"username": "dr_ada", "password": "pw-ada-123456"},
        headers={"authorization": f"Token {token.key}"},
    )
    assert response.status_code == 200
    assert AuditEvent.objects.filter(
        event_type=AuditEvent.EventType.LOGIN_SUCCEEDED, acting_user=clinician
    ).exists()


def test_staff_reads_in_the_admin_are_audited(client, admin_user, clinician):
    from cases import services

    patient = services.patient_create(
        lab=home_lab(clinician),
        created_by=clinician,
        record_number="ADM-9",
        display_label="A",
    )
    client.force_login(admin_user)
    client.get(reverse("admin:cases_patient_change", args=[patient.pk]))
    read = AuditEvent.objects.get(event_type=AuditEvent.EventType.PATIENT_VIEWED)
    assert (read.acting_user, read.patient_id) == (admin_user, patient.pk)
