"""The Grad-CAM follow-up of a saved prediction, in-process with the real demo ensemble."""

import io
import uuid

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image

from cases import services
from cases.models import Prediction, SaliencyMap
from cases.reports.context import report_context
from inference import registry
from tests.factories import default_specimen, home_lab
from tests.images import upload

pytestmark = pytest.mark.slow


def _upload(patient, user, seed: int):
    return services.smear_image_upload(
        specimen=default_specimen(patient), file=upload(seed=seed), uploaded_by=user
    )


@pytest.fixture
def prediction(demo_version, hematologist, settings):
    settings.LP_SALIENCY = True  # off by default in the test settings
    patient = services.patient_create(
        lab=home_lab(hematologist), created_by=hematologist, record_number="G-1", display_label="G"
    )
    image = _upload(patient, hematologist, seed=11)
    services.image_classify(image_id=image.pk, task_id=str(uuid.uuid4()))
    return Prediction.objects.get(image=image)


def test_maps_are_stored_once_per_member_and_for_the_ensemble(prediction, demo_version):
    assert prediction.saliency_status == Prediction.Saliency.PENDING
    assert services.prediction_explain(prediction_id=prediction.pk) == "done"
    prediction.refresh_from_db()
    assert prediction.saliency_status == "done"
    maps = list(prediction.saliency_maps.all())
    assert sorted(m.member for m in maps) == sorted(["", *demo_version.member_names])
    size = demo_version.preprocessing["input_size"]
    for m in maps:
        assert m.class_name == prediction.label
        assert 0 <= m.peak_x <= 1 and 0 <= m.peak_y <= 1
        with default_storage.open(m.file.name, "rb") as fh:
            assert Image.open(io.BytesIO(fh.read())).size == (size, size)
    # A second delivery changes nothing.
    assert services.prediction_explain(prediction_id=prediction.pk) == "skipped"
    assert SaliencyMap.objects.filter(prediction=prediction).count() == len(maps)


def test_an_image_queued_while_the_maps_are_drawn_is_classified_before_the_next_member(
    prediction, demo_version, hematologist
):
    """The worker draws one map per member; what is queued meanwhile waits one member's map,
    not the whole image's: ``between`` runs between two members' maps."""
    patient = prediction.image.specimen.patient
    queued = _upload(patient, hematologist, seed=12)
    classified = []

    def between():
        classified.append(services.images_classify_waiting(task_id="maps-1"))

    assert services.prediction_explain(prediction_id=prediction.pk, between=between) == "done"
    assert classified == [1] + [0] * (len(demo_version.member_names) - 2)
    queued.refresh_from_db()
    assert queued.status == "done"


def test_the_task_classifies_what_waits_between_the_maps_with_the_loaded_engine(
    prediction, hematologist, monkeypatch
):
    """``explain_prediction`` passes the waiting classification as ``between``, and it never
    loads a version (here: none is loaded for the active one, so it classifies nothing)."""
    from cases.tasks import explain_prediction
    from inference import engine as engine_mod

    patient = prediction.image.specimen.patient
    seen = {}

    def explain(*, prediction_id, between=None):
        queued = _upload(patient, hematologist, seed=13)
        seen["classified"] = between()
        engine_mod.reset_engine_cache()  # as if the worker held another version's engine
        seen["without_engine"] = between()
        queued.refresh_from_db()
        seen["status"] = queued.status
        return "done"

    monkeypatch.setattr(services, "prediction_explain", explain)
    explain_prediction.apply(args=[prediction.pk])
    assert seen == {"classified": 1, "without_engine": 0, "status": "done"}


def test_the_image_page_shows_the_maps_to_the_lab_only(
    prediction, hematologist, other_clinician, client
):
    services.prediction_explain(prediction_id=prediction.pk)
    ensemble = prediction.saliency_maps.get(member="")
    client.force_login(hematologist)
    page = client.get(reverse("cases:image-detail", args=[prediction.image_id])).content.decode()
    assert "Where the model looked (Grad-CAM)" in page and "data-saliency-toggle" in page
    url = reverse("cases:image-saliency", args=[prediction.image_id, ensemble.pk])
    assert url in page
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    client.force_login(other_clinician)
    assert client.get(url).status_code == 404
    # The signed report carries the ensemble overlay beside the thumbnail.
    rows = report_context(specimen=prediction.image.specimen, user=hematologist)["rows"]
    assert rows[0].overlay.startswith("data:image/jpeg;base64,")


def test_a_version_no_longer_served_gets_no_maps_and_says_why(prediction, demo_version):
    registry.retire_version(demo_version)
    assert services.prediction_explain(prediction_id=prediction.pk) == "unavailable"
    prediction.refresh_from_db()
    assert "no longer the active version" in prediction.saliency_error
    assert not prediction.saliency_maps.exists()


def test_the_sweep_gives_up_on_maps_that_never_came_and_a_late_task_still_stores_them(
    prediction, settings
):
    from datetime import timedelta

    from django.utils import timezone

    later = timezone.now() + timedelta(seconds=settings.LP_SWEEP_QUEUED_AFTER_S + 1)
    assert services.images_recover(now=later).maps_given_up == 1
    prediction.refresh_from_db()
    assert prediction.saliency_status == "failed" and "was lost" in prediction.saliency_error
    assert services.prediction_explain(prediction_id=prediction.pk) == "done"


def test_a_version_switch_lets_go_of_the_grad_cam_models_with_the_engine(prediction, request):
    """The worker's Grad-CAM cache holds models built on the engine's members: a version switch
    drops it before loading the new version, so one ensemble is in memory, not two."""
    from cases.services import saliency
    from inference import engine as engine_mod

    assert services.prediction_explain(prediction_id=prediction.pk) == "done"
    assert saliency._EXPLAINERS
    saved = engine_mod._engine  # restored afterwards: spares later tests a reload
    try:
        request.getfixturevalue("light_version")  # activates a one-member version
        assert engine_mod.get_engine().member_names == ["MobileNetV2"]
        assert not saliency._EXPLAINERS
    finally:
        engine_mod._engine = saved
