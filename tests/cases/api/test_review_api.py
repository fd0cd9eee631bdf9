"""The review workflow through the API: queue, verdicts, sign-off, amendment, QA, members."""

import pytest
from rest_framework.test import APIClient

from cases.models import AuditEvent, Membership, Specimen
from tests.factories import default_specimen, make_image, make_prediction

SPLIT = ["Pro", "Pro", "Pre", "Early", "Benign"]


def client_for(user):
    api = APIClient()
    api.force_authenticate(user=user)
    return api


@pytest.fixture
def other_hematologist_api(lab):
    from tests.conftest import _member

    return client_for(_member("dr_bo", "pw-bo-123456", lab.name, "hematologist"))


@pytest.fixture
def case(patient, clinician):
    calm = make_image(patient, clinician, seed=801)
    make_prediction(calm, member_labels=["Pro"] * 5)
    split = make_image(patient, clinician, seed=802)
    make_prediction(split, member_labels=SPLIT)
    return {"calm": calm, "split": split, "specimen": default_specimen(patient)}


def test_the_queue_puts_flagged_images_first_with_votes_and_flags(clinician_api, case):
    body = clinician_api.get("/api/v1/review-queue/").json()
    assert body["count"] == 2
    first, second = body["results"]
    assert (first["id"], second["id"]) == (case["split"].pk, case["calm"].pk)
    assert [f["reason"] for f in first["flags"]] == ["split_vote"]
    assert first["flags"][0]["label"] == "Split vote"
    assert first["prediction"]["votes"] == 2 and len(first["prediction"]["members"]) == 5
    assert first["specimen"]["accession_number"] == case["specimen"].accession_number
    only = clinician_api.get("/api/v1/review-queue/", {"reason": "split_vote"}).json()
    assert [r["id"] for r in only["results"]] == [case["split"].pk]


def test_a_verdict_is_recorded_and_a_bad_one_explained(clinician_api, case):
    url = f"/api/v1/images/{case['split'].pk}/verdicts/"
    bad = clinician_api.post(url, {"kind": "reclassify", "label": "Pre"}, format="json")
    assert bad.status_code == 400
    assert bad.json() == {"non_field_errors": ["Say why the image is reclassified."]}
    good = clinician_api.post(
        url, {"kind": "reclassify", "label": "Pre", "reason": "nucleoli"}, format="json"
    )
    assert good.status_code == 201
    assert (good.json()["label"], good.json()["reviewer_role"]) == ("Pre", "hematologist")
    history = clinician_api.get(url).json()
    assert [v["kind"] for v in history] == ["reclassify"]


def test_a_verdict_on_a_result_that_is_no_longer_the_latest_records_nothing(clinician_api, case):
    """The reviewer saw v1's Pro; meanwhile the image was classified again (Benign). Confirming
    recorded Benign as verified, a label the reviewer never saw."""
    image = case["calm"]
    seen = clinician_api.get("/api/v1/review-queue/").json()["results"][1]["prediction"]["id"]
    make_prediction(image, member_labels=["Benign"] * 5)  # the newer result
    url = f"/api/v1/images/{image.pk}/verdicts/"
    stale = clinician_api.post(url, {"kind": "confirm", "prediction": seen}, format="json")
    assert stale.status_code == 409
    assert "changed after it was shown to you" in stale.json()["detail"]
    assert image.verdicts.count() == 0
    latest = image.latest_prediction.pk
    fresh = clinician_api.post(url, {"kind": "confirm", "prediction": latest}, format="json")
    assert (fresh.status_code, fresh.json()["label"]) == (201, "Benign")


def test_sign_off_refusals_say_why_and_a_technologist_gets_403(clinician_api, technologist, case):
    specimen = case["specimen"]
    url = f"/api/v1/specimens/{specimen.pk}/sign-off/"
    refused = clinician_api.post(url, {"interpretation": "Pro"}, format="json")
    assert refused.status_code == 409
    assert "2 image(s) still need a verdict" in refused.json()["detail"]
    for image in (case["calm"], case["split"]):
        clinician_api.post(
            f"/api/v1/images/{image.pk}/verdicts/", {"kind": "confirm"}, format="json"
        )
    tech = client_for(technologist).post(url, {"interpretation": "Pro"}, format="json")
    assert tech.status_code == 403
    assert "Only a hematologist" in tech.json()["detail"]
    signed = clinician_api.post(url, {"interpretation": "Pro", "comment": "c"}, format="json")
    assert signed.status_code == 201 and signed.json()["version"] == 1
    again = clinician_api.post(url, {"interpretation": "Pre"}, format="json")
    assert again.status_code == 409
    late = clinician_api.post(
        f"/api/v1/images/{case['calm'].pk}/verdicts/", {"kind": "confirm"}, format="json"
    )
    assert late.status_code == 400 and "signed out" in str(late.json())
    amend = clinician_api.post(
        f"/api/v1/specimens/{specimen.pk}/amendments/",
        {"interpretation": "Pre", "reason": "flow cytometry"},
        format="json",
    )
    assert amend.status_code == 201 and amend.json()["version"] == 2
    detail = clinician_api.get(f"/api/v1/specimens/{specimen.pk}/").json()
    assert detail["status"] == Specimen.Status.AMENDED
    assert [s["version"] for s in detail["sign_offs"]] == [2, 1]
    assert detail["summary"]["agreed"] == 2
    refusals = AuditEvent.objects.filter(event_type=AuditEvent.EventType.ACTION_REFUSED)
    assert refusals.count() == 3  # unreviewed, the technologist, signed already


def test_a_signature_over_a_case_that_moved_since_it_was_read_signs_nothing(
    clinician_api, other_hematologist_api, case
):
    """Read with both images confirmed Pro; a colleague then reclassified one to Pre. The
    signature covered a case the signer never saw (and an amendment a version it never saw)."""
    specimen = case["specimen"]
    for image in (case["calm"], case["split"]):
        clinician_api.post(
            f"/api/v1/images/{image.pk}/verdicts/", {"kind": "confirm"}, format="json"
        )
    detail = f"/api/v1/specimens/{specimen.pk}/"
    read = clinician_api.get(detail).json()["sign_state"]
    other_hematologist_api.post(
        f"/api/v1/images/{case['split'].pk}/verdicts/",
        {"kind": "reclassify", "label": "Pre", "reason": "nucleoli"},
        format="json",
    )
    url = f"{detail}sign-off/"
    stale = clinician_api.post(url, {"interpretation": "Pro", **read}, format="json")
    assert stale.status_code == 409 and "after you opened the page" in stale.json()["detail"]
    assert not specimen.sign_offs.exists()
    read = clinician_api.get(detail).json()["sign_state"]
    signed = clinician_api.post(url, {"interpretation": "Pro", **read}, format="json")
    assert signed.status_code == 201

    amend = f"{detail}amendments/"
    read = clinician_api.get(detail).json()["sign_state"]
    assert read["seen_version"] == 1
    first = other_hematologist_api.post(
        amend, {"interpretation": "Pre", "reason": "flow", **read}, format="json"
    )
    second = clinician_api.post(
        amend, {"interpretation": "Early", "reason": "morphology", **read}, format="json"
    )
    assert (first.status_code, second.status_code) == (201, 409)
    assert "Version 2 of this specimen's sign-off" in second.json()["detail"]
    assert list(specimen.sign_offs.values_list("version", flat=True).order_by("version")) == [1, 2]


def test_qa_reports_agreement_with_an_interval(clinician_api, manager, technologist, case, lab):
    clinician_api.post(
        f"/api/v1/images/{case['calm'].pk}/verdicts/", {"kind": "confirm"}, format="json"
    )
    clinician_api.post(
        f"/api/v1/images/{case['split'].pk}/verdicts/",
        {"kind": "reclassify", "label": "Early", "reason": "r"},
        format="json",
    )
    body = client_for(manager).get(f"/api/v1/labs/{lab.pk}/qa/").json()
    assert (body["images"], body["agreed"], body["agreement"]) == (2, 1, 0.5)
    low, high = body["agreement_ci95"]
    assert low < 0.5 < high
    assert sum(map(sum, body["confusion_matrix"])) == 2
    assert client_for(technologist).get(f"/api/v1/labs/{lab.pk}/qa/").status_code == 403


def test_a_manager_adds_and_removes_members(manager, lab, other_clinician):
    api = client_for(manager)
    url = f"/api/v1/labs/{lab.pk}/members/"
    added = api.post(url, {"username": "dr_bob", "role": "technologist"}, format="json")
    assert added.status_code == 200
    assert Membership.objects.get(lab=lab, user=other_clinician).role == "technologist"
    api.post(url, {"username": "dr_bob", "role": "technologist", "remove": True}, format="json")
    assert not Membership.objects.filter(lab=lab, user=other_clinician).exists()
    last = api.post(url, {"username": "mgr_meg", "role": "technologist"}, format="json")
    assert last.status_code == 400  # the lab would keep no manager or hematologist
    assert Membership.objects.get(lab=lab, user=manager).role == "manager"
