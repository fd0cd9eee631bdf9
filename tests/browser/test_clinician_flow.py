"""A case's whole path in a real browser: a technologist registers a patient and a specimen and
uploads its smear images, which the worker classifies while the page updates by itself; a
hematologist works the review queue from the keyboard only, signs the specimen out, downloads
its signed PDF (the bytes stored at signing), finds it locked, amends it with a reason and sees
both versions; the QA page shows the agreement.

Real parts only: headless Chromium (Debian's chromium + chromedriver, never downloaded), the
live server, a Celery worker process on the test database and the registered demo ensemble.
"""

from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.images import smear_like_array

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

SCREENSHOTS = Path("/tmp/lp-screens")
CLASSIFY_TIMEOUT_S = 300  # the worker loads five networks before the first classification


def _save_full_page(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 900), 4000))
    target = SCREENSHOTS / name
    driver.save_screenshot(str(target))
    driver.set_window_size(1280, 1000)
    return target


@pytest.fixture
def downloads(tmp_path):
    return tmp_path / "downloads"


def _download_signed_pdf(browser, folder: Path) -> None:
    """Click "Download PDF" and check the file that arrives is the report stored at signing."""
    import hashlib
    import time

    from cases.models import CaseReport

    browser.find_element(By.ID, "report-pdf").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = [p for p in folder.glob("*.pdf")] if folder.exists() else []
        if done:
            break
        time.sleep(0.2)
    assert done, "the PDF did not download"
    content = done[0].read_bytes()
    stored = CaseReport.objects.order_by("-id").first()
    assert content.startswith(b"%PDF")
    assert hashlib.sha256(content).hexdigest() == stored.sha256
    assert done[0].name == stored.filename


def _click_to_next_page(browser, by, value):
    """Click what loads another page, and return once that page has loaded.

    Every wait after a navigation must start on the new page: an element of the old one, read
    while Chromium replaces the document, fails with "Node with given id does not belong to the
    document", a WebDriverException that WebDriverWait does not ignore (CI saw it once when
    the old page's "signed out" message was read as the amended page arrived).
    """
    browser.execute_script("window.__lpLeaving = true;")
    browser.find_element(by, value).click()
    WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__lpLeaving !== true && document.readyState === 'complete';"
        ),
        message=f"clicking {value!r} did not load a page",
    )


def _log_in(browser, live_server, username, password):
    browser.get(live_server.url + reverse("login"))
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    _submit(browser)
    assert "Patients" in browser.find_element(By.TAG_NAME, "h1").text


def _log_out(browser):
    _click_to_next_page(browser, By.CSS_SELECTOR, ".logout-form button")
    assert browser.find_elements(By.NAME, "username")


def _submit(browser, selector="main form button[type=submit]"):
    _click_to_next_page(browser, By.CSS_SELECTOR, selector)


def _keys(browser, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(browser)
    for key in keys:
        chain.send_keys(key)
    chain.perform()


def test_technologist_uploads_and_hematologist_reviews_signs_and_amends(
    live_server,
    celery_worker,
    demo_version,
    technologist,
    hematologist,
    browser,
    tmp_path,
    downloads,
):
    from selenium.webdriver.common.keys import Keys

    wait = WebDriverWait(browser, 20)
    banner = "Research use only: not a diagnostic device."

    # --- The technologist: patient, specimen, three images -------------------------------
    _log_in(browser, live_server, "tech_tom", "pw-tom-123456")
    assert banner in browser.find_element(By.CSS_SELECTOR, ".research-banner").text
    _click_to_next_page(browser, By.LINK_TEXT, "New patient")
    wait.until(ec.presence_of_element_located((By.NAME, "record_number")))
    browser.find_element(By.NAME, "record_number").send_keys("MRN-BROWSER-1")
    browser.find_element(By.NAME, "display_label").send_keys("Patient Z-1")
    _submit(browser)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Patient Z-1"))
    browser.find_element(By.NAME, "accession_number").send_keys("ACC-2026-001")
    browser.find_element(By.NAME, "clinical_question").send_keys("Blasts on the count")
    _submit(browser)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "ACC-2026-001"))
    specimen_url = browser.current_url
    paths = []
    for seed in (7, 8, 9):
        path = tmp_path / f"smear field {seed}.jpg"
        Image.fromarray(smear_like_array(seed=seed, size=320)).save(path, "JPEG", quality=92)
        paths.append(str(path))
    browser.find_element(By.NAME, "images").send_keys("\n".join(paths))
    _submit(browser, ".upload-form button[type=submit]")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "3 images stored"))
    browser.execute_script("window.__lpSameDocument = true;")

    # The labels appear in the table without a reload (static/js/status.js).
    WebDriverWait(browser, CLASSIFY_TIMEOUT_S, poll_frequency=1).until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".image-table .badge-done")) == 3
            or d.find_elements(By.CSS_SELECTOR, ".image-table .badge-failed")
        ),
        message="the three images were not classified",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".image-table .badge-failed")
    assert browser.execute_script("return window.__lpSameDocument === true;"), "page reloaded"
    _save_full_page(browser, "browser-specimen-classified.png")

    # One image page: the full result, DEMO warning, votes and bars.
    _click_to_next_page(browser, By.CSS_SELECTOR, ".image-table a.row-link")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Image #"))
    result = browser.find_element(By.CSS_SELECTOR, "[data-result] .result-card")
    assert "DEMO model — predictions are not meaningful." in result.text
    rows = result.find_elements(By.CSS_SELECTOR, ".votes-table tbody tr")
    assert sorted(r.find_element(By.TAG_NAME, "th").text for r in rows) == sorted(
        demo_version.member_names
    )
    assert len(result.find_elements(By.CSS_SELECTOR, ".bars .bar-row")) == 4
    assert "smear field" not in browser.title  # the file name is never the page title
    # A technologist cannot sign: the specimen page offers no sign-off form.
    browser.get(specimen_url)
    assert not browser.find_elements(By.ID, "sign-form")
    _log_out(browser)

    # --- The hematologist: the queue from the keyboard only ------------------------------
    _log_in(browser, live_server, "dr_ada", "pw-ada-123456")
    awaiting = browser.find_element(By.CSS_SELECTOR, "[data-review-awaiting]")
    assert awaiting.text == "3"
    _click_to_next_page(browser, By.ID, "nav-review")
    reviewer = wait.until(ec.visibility_of_element_located((By.ID, "reviewer")))
    browser.execute_script("window.__lpSameDocument = true;")
    flagged = browser.execute_script(
        "return Array.from(document.querySelectorAll('#queue-list tbody tr'))"
        ".map(r => r.querySelectorAll('.flag-badge').length > 0);"
    )
    assert flagged == sorted(flagged, reverse=True), "flagged images must come first"

    def model_label():
        return reviewer.find_element(By.CSS_SELECTOR, "[data-model-label]").text

    def recorded(n):
        wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "[data-review-awaiting]").text == str(3 - n)
        )

    _keys(browser, Keys.ENTER)  # 1: confirm the model's label
    recorded(1)
    label = model_label()
    other = next(i for i, c in enumerate(["Benign", "Early", "Pre", "Pro"], 1) if c != label)
    _keys(browser, str(other))  # 2: another class asks for a reason
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-reason]")))
    _keys(browser, "nuclear chromatin", Keys.ENTER)
    recorded(2)
    _keys(browser, "n", "1")  # 3: not assessable, poor quality
    recorded(3)
    wait.until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "[data-state]"), "Every image in this queue has a verdict"
        )
    )
    _keys(browser, Keys.ARROW_LEFT)  # the arrows move through what was reviewed
    assert "Recorded:" in reviewer.find_element(By.CSS_SELECTOR, "[data-state]").text
    assert browser.execute_script("return window.__lpSameDocument === true;"), "page reloaded"
    _save_full_page(browser, "browser-review-queue.png")

    # --- Sign out, find it locked, amend, see both versions -------------------------------
    browser.get(specimen_url)
    assert "Reviewers agreed with the model on" in browser.page_source
    browser.find_element(
        By.CSS_SELECTOR, "#sign-form select[name=interpretation] option[value=Pro]"
    ).click()
    browser.find_element(By.CSS_SELECTOR, "#sign-form textarea[name=comment]").send_keys("Pro-B")
    _submit(browser, "#sign-form button[type=submit]")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "signed out"))
    assert "Signed out: this specimen is read-only." in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, ".upload-form")
    image_id = int(
        browser.find_element(By.CSS_SELECTOR, ".image-table a.row-link").text.split("#")[1]
    )
    status = browser.execute_script(
        "const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;"
        f"return fetch('/api/v1/images/{image_id}/verdicts/', {{method: 'POST', "
        "credentials: 'same-origin', headers: {'Content-Type': 'application/json', "
        "'X-CSRFToken': token}, body: JSON.stringify({kind: 'confirm'})}).then(r => r.status);"
    )
    assert status == 400, "a signed specimen must refuse new verdicts"
    _download_signed_pdf(browser, downloads)
    # The amendment form stays closed until asked for.
    assert not browser.find_element(
        By.CSS_SELECTOR, "#sign-form textarea[name=reason]"
    ).is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#amend > summary").click()
    browser.find_element(
        By.CSS_SELECTOR, "#sign-form select[name=interpretation] option[value=Pre]"
    ).click()
    browser.find_element(By.CSS_SELECTOR, "#sign-form textarea[name=reason]").send_keys(
        "Flow cytometry: pre-B"
    )
    _submit(browser, "#sign-form button[type=submit]")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "amended"))
    versions = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".sign-off h3")]
    assert versions == ["Version 2 (amendment) · current", "Version 1 · superseded"]
    assert "Flow cytometry: pre-B" in browser.page_source
    _save_full_page(browser, "browser-specimen-signed.png")

    # --- The lab's QA page ----------------------------------------------------------------
    _click_to_next_page(browser, By.LINK_TEXT, "Labs")
    _click_to_next_page(browser, By.LINK_TEXT, "Model QA")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Model QA"))
    assert "1 of 2 reviewed images" in browser.page_source
    _save_full_page(browser, "browser-lab-qa.png")
