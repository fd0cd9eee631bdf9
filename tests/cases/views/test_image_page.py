"""The image page: the result with its full class name, bars, member votes, agreement, model
version (with the DEMO warning), history, and the states before a result exists."""

from django.urls import reverse

from cases.models import SmearImage

# Four members vote Pre, the fourth (Xception) Pro; the means are Benign 0.04, Early 0.12,
# Pre 0.71, Pro 0.13 (the bars below).
MAJORITY_PRE = [
    {"Benign": 0.03, "Early": 0.08, "Pre": 0.85, "Pro": 0.04},
    {"Benign": 0.04, "Early": 0.11, "Pre": 0.80, "Pro": 0.05},
    {"Benign": 0.04, "Early": 0.11, "Pre": 0.80, "Pro": 0.05},
    {"Benign": 0.05, "Early": 0.15, "Pre": 0.35, "Pro": 0.45},
    {"Benign": 0.04, "Early": 0.15, "Pre": 0.75, "Pro": 0.06},
]
# Two votes each for Early and Pre, one for Pro; the tie goes to Early on its higher mean
# (Benign 0.08, Early 0.36, Pre 0.35, Pro 0.21).
SPLIT_EARLY_PRE = [
    {"Benign": 0.05, "Early": 0.70, "Pre": 0.15, "Pro": 0.10},
    {"Benign": 0.05, "Early": 0.20, "Pre": 0.60, "Pro": 0.15},
    {"Benign": 0.10, "Early": 0.15, "Pre": 0.20, "Pro": 0.55},
    {"Benign": 0.10, "Early": 0.60, "Pre": 0.20, "Pro": 0.10},
    {"Benign": 0.10, "Early": 0.15, "Pre": 0.60, "Pro": 0.15},
]


def _page(client, image):
    response = client.get(reverse("cases:image-detail", args=[image.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_result_shows_label_bars_votes_and_agreement(
    clinician_client, image, make_version, make_prediction
):
    version = make_version(3, status="active")
    make_prediction(image, version=version, member_probabilities=MAJORITY_PRE, inference_ms=123.4)

    page = _page(clinician_client, image)

    assert "Pre-B ALL" in page  # the full class name next to the label
    assert "4 of 5 models agree" in page
    assert "Majority" in page
    assert "1 voted for another class" in page
    # one bar per class with the mean probability, the winner first among equals
    for name, percent in [("Benign", "4.0"), ("Early", "12.0"), ("Pre", "71.0"), ("Pro", "13.0")]:
        assert f'data-width="{percent}"' in page, name  # set by status.js (CSP: no inline style)
        assert f'<span class="bar-value">{percent}%</span>' in page, name
    assert "4 votes" in page and "1 vote<" in page
    # the member table: every member with its vote and per-class probabilities
    for member in ("ResNet50", "VGG16", "MobileNetV2", "Xception", "NASNetLarge"):
        assert f'<th scope="row">{member}</th>' in page
    assert page.count('<tr class="dissent">') == 1
    assert '<td class="num chosen">85.0%</td>' in page
    assert "Model version" in page and "v3" in page
    assert "123 ms" in page
    assert "DEMO model" not in page
    assert "Classify with the active model" not in page  # already the active version


def test_demo_model_result_carries_a_prominent_warning(
    clinician_client, image, make_version, make_prediction
):
    version = make_version(1, is_demo=True, status="active")
    make_prediction(image, version=version, member_labels=["Benign"] * 5)

    page = _page(clinician_client, image)

    assert "DEMO model — predictions are not meaningful." in page
    assert "Hematogones (benign)" in page
    assert "All 5 models agree" in page
    assert "Unanimous" in page


def test_split_vote_is_flagged_as_uncertain(clinician_client, image, make_version, make_prediction):
    version = make_version(2, status="active")
    make_prediction(image, version=version, member_probabilities=SPLIT_EARLY_PRE)

    page = _page(clinician_client, image)

    assert "Early pre-B ALL" in page
    assert "2 of 5 models agree" in page
    assert "Uncertain: review manually" in page
    assert "review the smear manually" in page


def test_history_lists_every_version_and_offers_the_active_one(
    clinician_client, image, make_version, make_prediction
):
    old = make_version(1)
    newer = make_version(2)
    make_prediction(image, version=old, member_labels=["Pre"] * 5)
    make_prediction(image, version=newer, member_labels=["Pre", "Pre", "Pre", "Pro", "Pre"])
    make_version(3, status="active")

    page = _page(clinician_client, image)

    assert "Prediction history" in page
    assert "v2 (latest)" in page.replace('<span class="muted small">', "").replace("</span>", "")
    assert "<td>v1</td>" in page
    assert "5/5 unanimous" in page and "4/5 majority" in page
    assert "A newer model is active (v3)" in page
    assert reverse("cases:image-reclassify", args=[image.pk]) in page
    assert "Classify with the active model" in page


def test_the_history_withholds_the_label_of_a_result_outside_the_domain(
    clinician_client, image, make_version, make_prediction
):
    """The result card withheld the members' Pro; the history table beneath showed it plainly."""
    from cases.models import Prediction

    p = make_prediction(image, version=make_version(1), member_labels=["Pro"] * 5)
    Prediction.objects.filter(pk=p.pk).update(out_of_domain=True, ood_score=3.0)

    history = _page(clinician_client, image).split('id="history-title"')[1].split("</section>")[0]

    assert "Outside domain" in history
    assert ">Pro<" not in history and "5/5" not in history


def test_the_page_names_the_uploaded_format_and_the_stored_one(clinician_client, image):
    """A JPEG upload is stored as a lossless PNG of its pixels: the page says both, so a
    technologist looking for the JPEG they sent does not read "PNG" as a mix-up."""
    image.format, image.original_format = "PNG", "JPEG"
    image.save(update_fields=["format", "original_format"])
    assert "uploaded as JPEG, stored as lossless PNG of its pixels" in _page(
        clinician_client, image
    )
    image.original_format = ""  # stored before the original format was recorded
    image.save(update_fields=["original_format"])
    page = _page(clinician_client, image)
    assert "uploaded as" not in page and " px · PNG · " in page


def test_queued_without_an_active_model_says_so(clinician_client, image):
    page = _page(clinician_client, image)
    assert "Waiting for a model to be activated" in page
    assert reverse("cases:image-status", args=[image.pk]) in page  # polled by status.js
    assert "/static/js/status.js" in page


def test_queued_with_an_active_model(clinician_client, image, make_version):
    make_version(4, status="active")
    page = _page(clinician_client, image)
    assert "Queued for classification" in page
    assert "Waiting for a model" not in page


def test_processing(clinician_client, image, make_version):
    make_version(4, status="active")
    SmearImage.objects.filter(pk=image.pk).update(status="processing")
    assert "Classifying…" in _page(clinician_client, image)


def test_failed_image_offers_try_again(clinician_client, image):
    SmearImage.objects.filter(pk=image.pk).update(
        status="failed", error_message="This image could not be classified: bad pixels."
    )
    page = _page(clinician_client, image)
    assert "Classification failed" in page
    assert "This image could not be classified: bad pixels." in page
    assert reverse("cases:image-requeue", args=[image.pk]) in page
    assert "Try again" in page


def test_a_failed_reclassification_offers_no_verdict_on_the_earlier_result(
    clinician_client, image, make_version, make_prediction
):
    """The page offered "Confirm Pre" on the earlier result; the service refused it (the
    image is not classified), said to reload, and the reloaded page offered it again."""
    make_prediction(image, version=make_version(1), member_labels=["Pre"] * 5)
    SmearImage.objects.filter(pk=image.pk).update(
        status="failed", error_message="The model could not be loaded."
    )

    page = _page(clinician_client, image)

    assert 'value="confirm"' not in page and 'value="reclassify"' not in page
    assert 'name="prediction"' not in page
    assert "Confirm Pre" not in page
    assert "Classifying it again failed: The model could not be loaded." in page
    assert "cannot be confirmed or reclassified" in page
    assert "Try again above" in page
    assert 'value="not_assessable"' in page and 'value="excluded"' in page  # what it allows


def test_an_image_being_classified_again_offers_no_verdict_on_the_earlier_result(
    clinician_client, image, make_version, make_prediction
):
    make_prediction(image, version=make_version(1), member_labels=["Pre"] * 5)
    make_version(2, status="active")
    SmearImage.objects.filter(pk=image.pk).update(status="processing")

    page = _page(clinician_client, image)

    assert 'value="confirm"' not in page and "Confirm Pre" not in page
    assert "being classified again" in page


def test_specimen_page_lists_images_with_status_and_latest_label(
    clinician_client, patient, image, make_version, make_prediction
):
    make_prediction(
        image,
        version=make_version(5, is_demo=True),
        member_labels=["Pre", "Pre", "Pre", "Pro", "Pre"],
    )
    page = clinician_client.get(reverse("cases:specimen-detail", args=[image.specimen_id])).text
    assert "field-1.png" in page
    assert reverse("cases:image-detail", args=[image.pk]) in page
    assert reverse("cases:image-thumbnail", args=[image.pk]) in page
    assert "badge-done" in page
    assert '<span class="label-chip label-pre">Pre</span>' in page
    assert "4/5 majority" in page
    assert "DEMO" in page
    assert "Awaiting verdict" in page
