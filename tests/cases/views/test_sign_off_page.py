"""The specimen page's sign-off form signs the case the hematologist read, or nothing."""

import re

from django.urls import reverse

from cases import services


def _hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="(\d+)"', page).group(1)


def test_the_page_refuses_a_signature_over_verdicts_recorded_after_it_was_read(
    clinician_client, clinician, patient, image, make_prediction
):
    make_prediction(image, member_labels=["Pro"] * 5)
    services.verdict_record(image=image, user=clinician, kind="confirm")
    page_url = reverse("cases:specimen-detail", args=[image.specimen_id])
    page = clinician_client.get(page_url).content.decode()
    form = {
        "interpretation": "Pro",
        "comment": "",
        "seen_verdict": _hidden(page, "seen_verdict"),
        "seen_version": _hidden(page, "seen_version"),
    }
    services.verdict_record(  # a colleague changes the case meanwhile
        image=image, user=clinician, kind="reclassify", label="Pre", reason="nucleoli"
    )
    sign_url = reverse("cases:specimen-sign", args=[image.specimen_id])

    refused = clinician_client.post(sign_url, form)

    assert refused.status_code == 409
    assert not image.specimen.sign_offs.exists()
    shown = refused.content.decode()
    assert "after you opened the page" in shown
    # The form shown with the refusal carries the case as it is now: signing again works.
    form["seen_verdict"] = _hidden(shown, "seen_verdict")
    assert clinician_client.post(sign_url, form).status_code == 302
    assert image.specimen.sign_offs.count() == 1


def test_a_form_error_keeps_the_state_the_signer_read(
    clinician_client, clinician, patient, image, make_prediction
):
    """Shown again for a form error, the form carried the case's new state: fixing the error
    and signing then covered a colleague's verdict the signer was never told about."""
    make_prediction(image, member_labels=["Pro"] * 5)
    services.verdict_record(image=image, user=clinician, kind="confirm")
    page_url = reverse("cases:specimen-detail", args=[image.specimen_id])
    read = _hidden(clinician_client.get(page_url).content.decode(), "seen_verdict")
    services.verdict_record(
        image=image, user=clinician, kind="reclassify", label="Pre", reason="nucleoli"
    )
    sign_url = reverse("cases:specimen-sign", args=[image.specimen_id])
    form = {"interpretation": "", "comment": "", "seen_verdict": read, "seen_version": "0"}

    invalid = clinician_client.post(sign_url, form)

    assert invalid.status_code == 400
    assert _hidden(invalid.content.decode(), "seen_verdict") == read
    form["interpretation"] = "Pro"
    assert clinician_client.post(sign_url, form).status_code == 409
    assert not image.specimen.sign_offs.exists()
