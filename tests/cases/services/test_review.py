"""The review workflow's rules: flags, verdicts, sign-off, amendments, roles, and the lab's QA."""

import pytest
from django.core.exceptions import ValidationError

from cases import services
from cases.flags import REASONS, evaluate, flag_rule
from cases.models import AppendOnlyError, AuditEvent, ImageFlag, SignOff, Specimen, Verdict
from cases.roles import RoleRequired
from cases.selectors import image_list
from cases.selectors.qa import lab_concordance
from cases.selectors.review import review_counts, review_queue, specimen_summary
from tests.factories import (
    default_specimen,
    make_image,
    make_model_version,
    make_patient,
    make_prediction,
)

EventType = AuditEvent.EventType


@pytest.fixture
def patient(clinician):
    return make_patient(clinician, "R-1", "Review case")


@pytest.fixture
def specimen(patient, clinician):
    return default_specimen(patient, clinician)


def classified(patient, user, labels, *, seed, version=None):
    image = make_image(patient, user, seed=seed)
    make_prediction(image, member_labels=labels, version=version)
    image.refresh_from_db()
    return image


def fail(image):
    from cases.services.lifecycle import Kind, image_transition

    image_transition(
        image=image,
        to=image.Status.FAILED,
        event_type=EventType.IMAGE_FAILED,
        message="The image cannot be read.",
        failure_kind=Kind.IMAGE,
    )


def reasons(image):
    return sorted(image.flags.filter(active=True).values_list("reason", flat=True))


# --- Flags -------------------------------------------------------------------------------------


def test_flags_say_why_an_image_needs_a_look(patient, clinician):
    version = make_model_version()
    version.review_threshold = 0.6
    version.save()
    unanimous = classified(patient, clinician, ["Pro"] * 5, seed=501, version=version)
    four = classified(patient, clinician, ["Pro"] * 4 + ["Pre"], seed=502, version=version)
    bare = classified(patient, clinician, ["Pro"] * 3 + ["Pre"] * 2, seed=503, version=version)
    split = classified(
        patient, clinician, ["Pro", "Pro", "Pre", "Early", "Benign"], seed=504, version=version
    )
    assert reasons(unanimous) == []
    assert reasons(four) == []
    # 3 of 5: a bare majority, and its mean probability (0.53) is below the threshold (4 of 5: 0.69)
    assert reasons(bare) == ["bare_majority", "low_confidence"]
    assert reasons(split) == ["low_confidence", "split_vote"]
    detail = split.flags.get(reason="split_vote").detail
    assert detail == "2 of 5 members voted Pro"


def test_a_version_without_a_threshold_flags_no_low_confidence(patient, clinician):
    bare = classified(patient, clinician, ["Pro"] * 3 + ["Pre"] * 2, seed=505)
    assert reasons(bare) == ["bare_majority"]


def test_a_failed_classification_is_flagged_and_a_new_result_supersedes_flags(patient, clinician):
    image = make_image(patient, clinician, seed=506)
    fail(image)
    assert reasons(image) == ["failed"]
    image.status = image.Status.QUEUED  # as a person's "try again" leaves it
    image.save(update_fields=["status"])
    make_prediction(image, member_labels=["Pro"] * 5)
    assert reasons(image) == []
    assert ImageFlag.objects.filter(image=image, active=False, reason="failed").exists()


def test_a_new_flag_reason_slots_in_by_registering_a_rule(patient, clinician):
    @flag_rule("test_only", label="Test only", description="for this test", priority=1)
    def always(image, prediction):
        return "always"

    try:
        image = classified(patient, clinician, ["Pro"] * 5, seed=507)
        assert reasons(image) == ["test_only"]
        assert evaluate(image, image.latest_prediction) == [("test_only", "always")]
    finally:
        del REASONS["test_only"]


# --- Verdicts ----------------------------------------------------------------------------------


def test_verdicts_are_rows_of_their_own_and_the_latest_counts(patient, clinician, specimen):
    image = classified(patient, clinician, ["Pro"] * 5, seed=508)
    first = services.verdict_record(image=image, user=clinician, kind="confirm")
    assert (first.label, first.prediction, first.reviewer_role) == (
        "Pro",
        image.latest_prediction,
        "hematologist",
    )
    second = services.verdict_record(
        image=image, user=clinician, kind="reclassify", label="Pre", reason="blasts look pre-B"
    )
    assert image.current_verdict == second
    assert Verdict.objects.filter(image=image).count() == 2
    events = AuditEvent.objects.filter(event_type=EventType.VERDICT_RECORDED, image=image)
    assert events.count() == 2
    assert events.first().extra_data["old"]["kind"] == "confirm"
    specimen.refresh_from_db()
    assert specimen.status == Specimen.Status.IN_REVIEW
    with pytest.raises(AppendOnlyError):
        first.save()
    with pytest.raises(AppendOnlyError):
        Verdict.objects.filter(pk=first.pk).update(label="Benign")


@pytest.mark.parametrize(
    ("kind", "label", "reason", "message"),
    [
        ("reclassify", "Pre", "", "Say why the image is reclassified."),
        ("reclassify", "Pro", "x", "Pro is the model's label: confirm it instead."),
        ("reclassify", "Blast", "x", "Choose one of Benign, Early, Pre, Pro to reclassify."),
        ("not_assessable", "", "", "Say why it is not assessable"),
        ("excluded", "", "", "Say why the image is excluded from the case."),
    ],
)
def test_a_verdict_without_what_it_needs_is_refused(
    patient, clinician, kind, label, reason, message
):
    image = classified(patient, clinician, ["Pro"] * 5, seed=509)
    with pytest.raises(ValidationError) as exc:
        services.verdict_record(image=image, user=clinician, kind=kind, label=label, reason=reason)
    assert exc.value.messages[0].startswith(message)
    assert not Verdict.objects.exists()


def test_only_technologists_and_hematologists_of_the_lab_verify(
    patient, clinician, technologist, manager, other_clinician
):
    image = classified(patient, clinician, ["Pro"] * 5, seed=510)
    assert services.verdict_record(
        image=image, user=technologist, kind="confirm"
    ).reviewer_role == ("technologist")
    for user in (manager, other_clinician):
        with pytest.raises(RoleRequired):
            services.verdict_record(image=image, user=user, kind="confirm")


def test_an_unclassified_image_can_be_excluded_but_not_confirmed(patient, clinician):
    image = make_image(patient, clinician, seed=511)  # still queued
    with pytest.raises(ValidationError):
        services.verdict_record(image=image, user=clinician, kind="confirm")
    verdict = services.verdict_record(
        image=image, user=clinician, kind="excluded", reason="duplicate field"
    )
    assert verdict.prediction is None


# --- The queue ---------------------------------------------------------------------------------


def test_the_queue_lists_flagged_images_first_and_drops_verified_ones(
    patient, clinician, other_clinician
):
    calm = classified(patient, clinician, ["Pro"] * 5, seed=512)
    split = classified(patient, clinician, ["Pro", "Pro", "Pre", "Early", "Benign"], seed=513)
    assert list(review_queue(user=clinician)) == [split, calm]
    assert list(review_queue(user=clinician, reason="split_vote")) == [split]
    assert review_counts(user=clinician) == {"awaiting": 2, "flagged": 1}
    assert list(review_queue(user=other_clinician)) == []
    services.verdict_record(image=split, user=clinician, kind="confirm")
    assert list(review_queue(user=clinician)) == [calm]


# --- Sign-off and amendments -------------------------------------------------------------------


def test_sign_off_needs_every_image_verified_or_excluded(patient, clinician, specimen):
    done = classified(patient, clinician, ["Pro"] * 5, seed=514)
    failed_to_exclude = make_image(patient, clinician, seed=515)
    fail(failed_to_exclude)
    services.verdict_record(image=done, user=clinician, kind="confirm")
    with pytest.raises(services.SignOffRefused) as exc:
        services.specimen_sign_out(specimen=specimen, user=clinician, interpretation="Pro")
    assert (
        str(exc.value)
        == f"1 image(s) still need a verdict or an exclusion: #{failed_to_exclude.pk}."
    )
    refused = AuditEvent.objects.get(event_type=EventType.ACTION_REFUSED, specimen=specimen)
    assert refused.extra_data["new"]["action"] == "sign out"
    services.verdict_record(
        image=failed_to_exclude, user=clinician, kind="excluded", reason="out of focus"
    )
    sign_off = services.specimen_sign_out(
        specimen=specimen, user=clinician, interpretation="Pro", comment="Pro-B ALL pattern"
    )
    specimen.refresh_from_db()
    assert (specimen.status, sign_off.version, sign_off.signed_by) == (
        Specimen.Status.SIGNED_OUT,
        1,
        clinician,
    )
    assert AuditEvent.objects.filter(event_type=EventType.SPECIMEN_SIGNED).count() == 1


def test_technologists_cannot_sign_and_the_refusal_is_audited(
    patient, clinician, technologist, specimen
):
    image = classified(patient, clinician, ["Pro"] * 5, seed=516)
    services.verdict_record(image=image, user=technologist, kind="confirm")
    with pytest.raises(services.SignOffRefused) as exc:
        services.specimen_sign_out(specimen=specimen, user=technologist, interpretation="Pro")
    assert exc.value.forbidden
    assert "Only a hematologist" in str(exc.value)
    assert AuditEvent.objects.filter(
        event_type=EventType.ACTION_REFUSED, acting_user=technologist
    ).exists()
    assert not SignOff.objects.exists()


def test_a_signed_specimen_is_read_only_until_amended(patient, clinician, specimen):
    image = classified(patient, clinician, ["Pro"] * 5, seed=517)
    services.verdict_record(image=image, user=clinician, kind="confirm")
    services.specimen_sign_out(specimen=specimen, user=clinician, interpretation="Pro")
    specimen.refresh_from_db()
    with pytest.raises(ValidationError):
        services.verdict_record(
            image=image, user=clinician, kind="reclassify", label="Pre", reason="second look"
        )
    with pytest.raises(ValidationError):
        make_image(patient, clinician, seed=518, specimen=specimen)
    with pytest.raises(ValidationError):
        services.specimen_update(
            specimen=specimen, user=clinician, data={"clinical_question": "changed"}
        )
    with pytest.raises(services.ActionRefused):
        services.image_requeue(image_id=image.pk, user=clinician)
    with pytest.raises(services.SignOffRefused) as exc:
        services.specimen_sign_out(specimen=specimen, user=clinician, interpretation="Pre")
    assert "amend it with a reason" in str(exc.value)
    with pytest.raises(services.SignOffRefused):
        services.specimen_amend(specimen=specimen, user=clinician, interpretation="Pre", reason="")

    amended = services.specimen_amend(
        specimen=specimen,
        user=clinician,
        interpretation="Pre",
        comment="revised",
        reason="flow cytometry showed pre-B",
    )
    specimen.refresh_from_db()
    assert specimen.status == Specimen.Status.AMENDED
    history = list(
        specimen.sign_offs.order_by("version").values_list(
            "version", "interpretation", "amendment_reason"
        )
    )
    assert history == [(1, "Pro", ""), (2, "Pre", "flow cytometry showed pre-B")]
    assert amended.is_amendment
    event = AuditEvent.objects.get(event_type=EventType.SPECIMEN_AMENDED)
    assert event.extra_data["new"]["amendment_reason"] == "flow cytometry showed pre-B"


@pytest.mark.parametrize(
    ("active", "why"),
    [
        (True, "still being classified"),
        # None active: nothing will finish until an administrator activates one; the old
        # message asked the hematologist to wait for a classification that was not coming.
        (False, "wait for a model version to be activated .none is active now.*administrator"),
    ],
)
def test_no_sign_off_while_an_image_is_being_classified(patient, clinician, specimen, active, why):
    done = classified(patient, clinician, ["Pro"] * 5, seed=522)
    queued = make_image(patient, clinician, seed=523)
    services.verdict_record(image=done, user=clinician, kind="confirm")
    services.verdict_record(image=queued, user=clinician, kind="excluded", reason="duplicate")
    if active:
        make_model_version(status="active")
    with pytest.raises(services.SignOffRefused, match=why):
        services.specimen_sign_out(specimen=specimen, user=clinician, interpretation="Pro")


def test_an_open_specimen_cannot_be_amended(patient, clinician, specimen):
    with pytest.raises(services.SignOffRefused):
        services.specimen_amend(
            specimen=specimen, user=clinician, interpretation="Pre", reason="why"
        )


# --- Case summary and QA -----------------------------------------------------------------------


def test_case_summary_counts_labels_agreement_and_open_flags(patient, clinician, specimen):
    a = classified(patient, clinician, ["Pro"] * 5, seed=519)
    b = classified(patient, clinician, ["Pre"] * 5, seed=520)
    classified(patient, clinician, ["Pro", "Pro", "Pre", "Early", "Benign"], seed=521)
    services.verdict_record(image=a, user=clinician, kind="confirm")
    services.verdict_record(image=b, user=clinician, kind="reclassify", label="Early", reason="r")
    summary = specimen_summary(images=image_list(user=clinician, specimen=specimen))
    assert summary["model_labels"] == {"Pro": 2, "Pre": 1}
    assert summary["verified_labels"] == {"Pro": 1, "Early": 1}
    assert (summary["reviewed"], summary["agreed"], summary["awaiting"]) == (2, 1, 1)
    assert summary["open_flags"] == [("split_vote", "Split vote", 1)]


def test_qa_concordance_counts_current_verdicts_with_an_interval(patient, clinician, lab):
    version = make_model_version()
    version.metrics = {"ensemble": {"accuracy": 0.99}}
    version.save()
    images = [
        classified(patient, clinician, ["Pro"] * 5, seed=530 + i, version=version) for i in range(4)
    ]
    for image in images[:2]:
        services.verdict_record(image=image, user=clinician, kind="confirm")
    services.verdict_record(image=images[2], user=clinician, kind="confirm")
    services.verdict_record(  # changed: only the latest verdict counts
        image=images[2], user=clinician, kind="reclassify", label="Pre", reason="r"
    )
    services.verdict_record(
        image=images[3], user=clinician, kind="not_assessable", reason="poor_quality"
    )
    qa = lab_concordance(lab=lab, version=version)
    assert (qa.images, qa.agreed) == (3, 2)
    assert qa.agreement == pytest.approx(2 / 3)
    low, high = qa.interval
    assert 0.2 < low < 2 / 3 < high < 0.95  # Wilson 95% for 2 of 3: 0.208–0.939
    assert qa.matrix[qa.classes.index("Pre")][qa.classes.index("Pro")] == 1
    assert "below the version's measured accuracy" in qa.warning


def test_concordance_is_held_against_the_in_domain_accuracy_it_compares_with():
    """Concordance counts only results inside the model's domain; it was held against the
    accuracy over all test images, flagged ones included."""
    from types import SimpleNamespace

    from cases.selectors.qa import _accuracy

    version = SimpleNamespace(metrics={"ensemble": {"accuracy": 0.9891}})
    assert _accuracy(version) == 0.9891  # no detector: every test image
    version.metrics["in_domain"] = {"images": 362, "ensemble": {"accuracy": 0.9917}}
    assert _accuracy(version) == 0.9917
