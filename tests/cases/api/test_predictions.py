"""Prediction history through the API: per image, the user's whole history, filters, detail."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases import services
from tests.factories import home_lab, make_image, make_model_version, make_prediction


@pytest.fixture
def history(patient, clinician, other_clinician):
    """Three of the clinician's predictions over two model versions, and one of another's."""
    v1, v2 = make_model_version(is_demo=False), make_model_version(is_demo=True)
    first = make_image(patient, clinician, seed=1)
    second = make_image(patient, clinician, seed=2)
    theirs = services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="B-1",
        display_label="Bob's",
    )
    return {
        "v1": v1,
        "v2": v2,
        "first_v1": make_prediction(first, version=v1, member_labels=["Pro"] * 4 + ["Pre"]),
        "first_v2": make_prediction(
            first, version=v2, member_labels=["Pre", "Pre", "Pro", "Early", "Benign"]
        ),
        "second_v2": make_prediction(second, version=v2, member_labels=["Benign"] * 5),
        "theirs": make_prediction(make_image(theirs, other_clinician, seed=3), version=v2),
        "first": first,
    }


def ids(response):
    assert response.status_code == 200, response.content
    return [p["id"] for p in response.json()["results"]]


def test_an_images_history_is_newest_first(clinician_api, history):
    response = clinician_api.get(f"/api/v1/images/{history['first'].pk}/predictions/")

    assert ids(response) == [history["first_v2"].pk, history["first_v1"].pk]
    labels = [p["model_version"]["label"] for p in response.json()["results"]]
    assert labels == [f"v{history['v2'].version} DEMO", f"v{history['v1'].version}"]


def test_the_history_holds_only_the_callers_predictions(clinician_api, history):
    expected = [history[k].pk for k in ("second_v2", "first_v2", "first_v1")]
    assert ids(clinician_api.get("/api/v1/predictions/")) == expected


def test_staff_see_the_whole_history(staff_api, history):
    assert history["theirs"].pk in ids(staff_api.get("/api/v1/predictions/"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"label": "pro"}, ["first_v1"]),
        ({"label": "Benign"}, ["second_v2"]),
        ({"agreement": "unanimous"}, ["second_v2"]),
        ({"agreement": "split"}, ["first_v2"]),
        ({"agreement": "majority"}, ["first_v1"]),
        ({"model_version": "v2"}, ["second_v2", "first_v2"]),
        ({"model_version": "v1", "label": "Pro"}, ["first_v1"]),
        ({"model_version": "v1", "label": "Pre"}, []),
        ({"label": "", "agreement": ""}, ["second_v2", "first_v2", "first_v1"]),
    ],
)
def test_the_history_can_be_filtered(clinician_api, history, query, expected):
    query = {
        key: history[value].version if key == "model_version" else value
        for key, value in query.items()
    }
    response = clinician_api.get("/api/v1/predictions/", query)
    assert ids(response) == [history[name].pk for name in expected]


@pytest.mark.parametrize(
    "query", [{"agreement": "most"}, {"model_version": "v3"}, {"model_version": "0"}]
)
def test_an_invalid_filter_is_refused(clinician_api, history, query):
    response = clinician_api.get("/api/v1/predictions/", query)
    assert response.status_code == 400
    assert list(response.json()) == list(query)


def test_a_prediction_carries_the_notice_and_its_uncertainty(clinician_api, history):
    prediction = history["first_v2"]

    body = clinician_api.get(f"/api/v1/predictions/{prediction.pk}/").json()

    assert body["research_use_only"].startswith("Research use only")
    assert "not a diagnosis" in body["research_use_only"]
    assert (body["label"], body["votes"], body["member_count"], body["agreement"]) == (
        "Pre",
        2,
        5,
        "split",
    )
    assert body["probabilities"] == prediction.probabilities
    assert len(body["member_votes"]) == 5
    assert body["model_version"]["is_demo"] is True
    assert body["image_id"] == history["first"].pk
    assert body["patient_id"] == history["first"].patient_id
    assert body["url"] == f"http://testserver/api/v1/predictions/{prediction.pk}/"


def test_another_clinicians_predictions_do_not_exist(other_api, history):
    assert other_api.get(f"/api/v1/predictions/{history['first_v1'].pk}/").status_code == 404
    assert other_api.get(f"/api/v1/images/{history['first'].pk}/predictions/").status_code == 404
    assert ids(other_api.get("/api/v1/predictions/")) == [history["theirs"].pk]


def test_the_history_is_paginated(clinician_api, history, settings):
    response = clinician_api.get("/api/v1/predictions/", {"page": 1})
    body = response.json()
    assert body["count"] == 3
    assert body["next"] is None
    assert clinician_api.get("/api/v1/predictions/", {"page": 9}).status_code == 404


def test_listing_predictions_costs_the_same_queries_for_few_or_many(
    clinician_api, history, patient, clinician
):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert clinician_api.get("/api/v1/predictions/").status_code == 200
        return len(captured)

    few = queries()
    for seed in (51, 52, 53):
        make_prediction(make_image(patient, clinician, seed=seed))
    assert queries() == few
