"""The image page's live updates never end silently (static/js/status.js): a status endpoint
that keeps failing, or one that refuses, makes the page say so and what to do.

They used to: a refusal (404 once the user lost access) stopped the updates without a word,
and a server error was retried every 8 s for ever, the page showing its spinner and "This page
updates by itself" all along. Only the live server and headless Chromium: no worker runs, so
the image stays queued and the page keeps polling.
"""

from unittest import mock

import pytest
from django.conf import settings
from django.http import HttpResponseServerError
from django.test import Client
from django.urls import reverse
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from cases.models import Membership
from cases.views import ImageStatusView
from tests.factories import make_image, make_patient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The first failure within 8 s (the polling interval), two more 3 s and 6 s later; the next
# try 12 s after that. A refusal within 8 s.
NOTICE_TIMEOUT_S = 40


def _signed_in(browser, live_server, user):
    client = Client()
    client.force_login(user)
    browser.get(live_server.url + reverse("login"))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    browser.add_cookie({"name": cookie.key, "value": cookie.value, "path": "/"})


def _notice(browser):
    return browser.find_element(By.CSS_SELECTOR, "[data-poll-notice]")


def test_the_page_says_when_its_updates_fail_and_when_they_stop(
    transactional_db, live_server, clinician, browser
):
    with mock.patch("cases.tasks.classify_image.apply_async"):  # no task to any real queue
        image = make_image(make_patient(clinician), clinician)
    _signed_in(browser, live_server, clinician)
    browser.get(live_server.url + reverse("cases:image-detail", args=[image.pk]))
    wait = WebDriverWait(browser, NOTICE_TIMEOUT_S, poll_frequency=0.5)
    assert not _notice(browser).is_displayed()

    down = mock.patch.object(
        ImageStatusView, "get", lambda view, request, pk: HttpResponseServerError("down")
    )
    with down:  # a server error that lasts: still tried, and said after a few in a row
        wait.until(lambda d: _notice(d).is_displayed(), message="no notice for the failures")
        text = _notice(browser).text
        assert "Updates are failing: the server answered 500. Still trying" in text
        assert "Reload the page; if this persists, tell an administrator." in text

    wait.until(lambda d: not _notice(d).is_displayed(), message="the notice stayed")

    Membership.objects.filter(user=clinician).delete()  # the image is no longer theirs: 404
    wait.until(lambda d: _notice(d).is_displayed(), message="no notice for the refusal")
    assert "Updates stopped: the server refused this page's status check (error 404)." in (
        _notice(browser).text
    )
