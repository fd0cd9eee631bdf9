"""A clinician's whole path in a real browser: log in, register a patient, upload a smear image,
and watch the result appear on the image page without reloading it.

Real parts only: headless Chromium (Debian's chromium + chromedriver, never downloaded), the
live server, a Celery worker process on the test database and the registered demo ensemble.
"""

import shutil
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.images import smear_like_array

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path("/tmp/lp-screens")
CLASSIFY_TIMEOUT_S = 300  # the worker loads five networks before the first classification


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    if not CHROMEDRIVER.exists():
        pytest.skip(f"{CHROMEDRIVER} is not installed (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager never looks for or downloads a driver.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def _smear_jpeg(path: Path) -> Path:
    Image.fromarray(smear_like_array(seed=7, size=320)).save(path, "JPEG", quality=92)
    return path


def _save_full_page(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 900), 4000))
    target = SCREENSHOTS / name
    driver.save_screenshot(str(target))
    driver.set_window_size(1280, 1000)
    return target


def test_clinician_uploads_a_smear_and_sees_the_result_appear(
    live_server, celery_worker, demo_version, clinician, browser, tmp_path
):
    wait = WebDriverWait(browser, 20)
    banner = "Research use only: not a diagnostic device."

    # Log in through the login page.
    browser.get(live_server.url + reverse("login"))
    assert banner in browser.find_element(By.CSS_SELECTOR, ".research-banner").text
    browser.find_element(By.NAME, "username").send_keys("dr_ada")
    browser.find_element(By.NAME, "password").send_keys("pw-ada-123456")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Patients"))
    assert "No patients yet" in browser.page_source

    # Register a patient.
    browser.find_element(By.LINK_TEXT, "New patient").click()
    wait.until(ec.presence_of_element_located((By.NAME, "record_number")))
    browser.find_element(By.NAME, "record_number").send_keys("MRN-BROWSER-1")
    browser.find_element(By.NAME, "display_label").send_keys("Patient Z-1")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Patient Z-1"))
    assert "Patient “Patient Z-1” registered." in browser.page_source

    # Upload a smear-like JPEG: one file leads to its image page.
    image_path = _smear_jpeg(tmp_path / "smear field 1.jpg")
    browser.find_element(By.NAME, "images").send_keys(str(image_path))
    browser.find_element(By.CSS_SELECTOR, ".upload-form button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "smear field 1.jpg"))
    assert "/images/" in browser.current_url
    assert banner in browser.find_element(By.CSS_SELECTOR, ".research-banner").text
    # The image itself comes through the authorised view and is decoded by the browser.
    assert (
        browser.execute_script(
            "const img = document.querySelector('.image-frame img');"
            "return img.complete && img.naturalWidth;"
        )
        == 320
    )

    _save_full_page(browser, "browser-image-waiting.png")

    # Mark this document: a reload would lose the mark.
    browser.execute_script("window.__lpSameDocument = true;")

    # The result appears without a reload, swapped in by static/js/status.js.
    WebDriverWait(browser, CLASSIFY_TIMEOUT_S, poll_frequency=1).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "[data-result] .result-card")
            or d.find_elements(By.CSS_SELECTOR, "[data-result] .state-failed")
        ),
        message="no result appeared on the image page",
    )
    assert browser.execute_script("return window.__lpSameDocument === true;"), "page reloaded"
    failed = browser.find_elements(By.CSS_SELECTOR, "[data-result] .state-failed")
    assert not failed, failed[0].text if failed else ""

    result = browser.find_element(By.CSS_SELECTOR, "[data-result] .result-card")
    label = result.find_element(By.CSS_SELECTOR, ".result-label .label-chip").text
    assert label in demo_version.class_names
    assert "DEMO model — predictions are not meaningful." in result.text
    rows = result.find_elements(By.CSS_SELECTOR, ".votes-table tbody tr")
    assert sorted(r.find_element(By.TAG_NAME, "th").text for r in rows) == sorted(
        demo_version.member_names
    )
    assert len(result.find_elements(By.CSS_SELECTOR, ".bars .bar-row")) == len(
        demo_version.class_names
    )
    assert "models agree" in result.text
    badge = browser.find_element(By.CSS_SELECTOR, "#image-status-badge .badge")
    assert badge.text == "Done"

    _save_full_page(browser, "browser-image-page.png")

    # Back on the patient page, the history lists the image with its label.
    browser.find_element(By.LINK_TEXT, "Patient Z-1").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Patient Z-1"))
    history = browser.find_element(By.CSS_SELECTOR, ".image-table").text
    assert "smear field 1.jpg" in history and label in history
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script(
            "const img = document.querySelector('.image-table img.thumb');"
            "return img && img.complete && img.naturalWidth > 0;"
        ),
        message="the thumbnail did not load",
    )
    _save_full_page(browser, "browser-patient-page.png")
