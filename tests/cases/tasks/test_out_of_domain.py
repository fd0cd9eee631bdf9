"""An image outside the model's domain, end to end in-process: the worker's service stores the
detector's verdict, the label is withheld on every surface, and a person classifies it."""

import uuid

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from cases import services
from cases.models import ImageFlag, Prediction
from cases.selectors.qa import lab_concordance
from inference.engine import get_engine
from tests.factories import default_specimen, home_lab
from tests.images import non_smear_arrays, png_bytes, smear_like_array, upload

pytestmark = pytest.mark.slow


@pytest.fixture
def specimen(hematologist):
    patient = services.patient_create(
        lab=home_lab(hematologist), created_by=hematologist, record_number="O-1", display_label="O"
    )
    return default_specimen(patient)


def _classified(specimen, user, array, name="field.png"):
    image = services.smear_image_upload(
        specimen=specimen, file=upload(name, png_bytes(array)), uploaded_by=user
    )
    outcome = services.image_classify(image_id=image.pk, task_id=str(uuid.uuid4())).outcome
    assert outcome is services.Outcome.DONE
    image.refresh_from_db()
    return image, Prediction.objects.get(image=image)


def test_the_engine_scores_in_the_same_call_and_flags_every_non_smear(ood_demo_version):
    engine = get_engine()
    assert engine.ood is not None and engine.version == ood_demo_version
    arrays = non_smear_arrays()
    results = engine.classify(list(arrays.values()))
    assert {
        name: r.out_of_domain for name, r in zip(arrays, results, strict=True)
    } == dict.fromkeys(arrays, True)
    assert all(r.ood_score > 1 for r in results)
    # Fresh smear-like fields (seeds the detector never saw) mostly pass: the thresholds are
    # the largest of 16 validation scores, so about 1 in 17 per test is expected over it.
    fresh = engine.classify([smear_like_array(seed=5000 + s) for s in range(24)])
    assert np.mean([r.out_of_domain for r in fresh]) <= 0.35


def test_an_image_outside_the_domain_is_stored_flagged_and_its_label_withheld(
    ood_demo_version, specimen, hematologist, client
):
    image, prediction = _classified(specimen, hematologist, non_smear_arrays()["document"])
    assert prediction.out_of_domain and prediction.ood_score > 1
    assert set(prediction.ood_parts) == {"features", "image"}
    assert prediction.shown_label is None and prediction.label  # the vote is kept
    flags = set(ImageFlag.objects.filter(image=image, active=True).values_list("reason", flat=True))
    assert "out_of_domain" in flags
    assert not flags & {"split_vote", "bare_majority", "low_confidence"}  # no label to doubt

    client.force_login(hematologist)
    page = client.get(reverse("cases:image-detail", args=[image.pk])).content.decode()
    assert "Outside the model's domain: not classified" in page
    assert "Show the members' votes anyway (unreliable for this image)" in page
    assert f"Confirm {prediction.label}" not in page
    queue = client.get(reverse("api:review-queue")).json()
    item = next(i for i in queue["results"] if i["id"] == image.pk)
    assert item["prediction"]["label"] is None and item["prediction"]["out_of_domain"] is True
    assert item["flags"][0]["reason"] == "out_of_domain"
    api = client.get(reverse("api:prediction-detail", args=[prediction.pk])).json()
    assert (api["label"], api["members_vote"], api["out_of_domain"]) == (
        None,
        prediction.label,
        True,
    )
    specimen_page = client.get(reverse("cases:specimen-detail", args=[specimen.pk])).content
    assert b"1 outside the model's domain (no model label)." in specimen_page


def test_nothing_to_confirm_outside_the_domain_but_a_person_may_classify_it(
    ood_demo_version, specimen, hematologist
):
    image, prediction = _classified(specimen, hematologist, non_smear_arrays()["photo-landscape"])
    with pytest.raises(ValidationError, match="nothing to confirm"):
        services.verdict_record(image=image, user=hematologist, kind="confirm")
    verdict = services.verdict_record(
        image=image, user=hematologist, kind="reclassify", label=prediction.label
    )
    assert verdict.label == prediction.label  # the members' vote may be chosen, no reason needed
    # The lab's QA measures the model on the images it labelled: this one is left out.
    qa = lab_concordance(lab=image.patient.lab, version=prediction.model_version)
    assert (qa.images, qa.out_of_domain) == (0, 1)
