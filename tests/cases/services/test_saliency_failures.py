"""What the image page says when Grad-CAM fails (no network runs: the engine is a stand-in)."""

from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse

from cases import services
from cases.models import Prediction
from tests.factories import make_image, make_patient, make_prediction


@pytest.fixture
def prediction(isolated_media, clinician, monkeypatch):
    from inference import engine

    image = make_image(make_patient(clinician, "MRN-GC-1", "G"), clinician, seed=4101)
    prediction = make_prediction(image)
    stand_in = SimpleNamespace(version=prediction.model_version, preprocessing={})
    monkeypatch.setattr(engine, "get_engine", lambda: stand_in)
    return prediction


def test_a_missing_image_file_is_said_plainly_without_the_server_path(
    prediction, clinician_client, caplog
):
    """The image page showed "FileNotFoundError: [Errno 2] No such file or directory:
    '/…/var/media/smears/…'"."""
    default_storage.delete(prediction.image.file.name)

    assert services.prediction_explain(prediction_id=prediction.pk) == "failed"

    prediction.refresh_from_db()
    assert prediction.saliency_status == Prediction.Saliency.FAILED
    reason = prediction.saliency_error
    assert "missing or damaged" in reason and "administrator" in reason
    for leak in (str(settings.MEDIA_ROOT), prediction.image.file.name, "Errno"):
        assert leak not in reason
    page = clinician_client.get(reverse("cases:image-detail", args=[prediction.image_id]))
    assert reason in page.content.decode()
    assert str(settings.MEDIA_ROOT) not in page.content.decode()
    assert str(settings.MEDIA_ROOT) in caplog.text  # the administrator's detail is in the log


def test_another_failure_names_its_kind_and_points_to_the_log(prediction, monkeypatch):
    from cases.services import saliency

    def broken(*args, **kwargs):
        raise ValueError(f"bad tensor read from {settings.MEDIA_ROOT}/models/m1.keras")

    monkeypatch.setattr(saliency, "_overlays", broken)
    assert services.prediction_explain(prediction_id=prediction.pk) == "failed"
    prediction.refresh_from_db()
    assert prediction.saliency_error == "ValueError; the server log has the details"


def test_a_model_file_error_is_not_blamed_on_the_image(prediction, monkeypatch):
    """Every OSError read "the image file ... is missing or damaged", a model file's too."""
    from cases.services import saliency

    def unreadable_model(engine):
        raise OSError(f"Unable to open file {settings.MEDIA_ROOT}/models/m1.keras")

    monkeypatch.setattr(saliency, "_explainer", unreadable_model)
    monkeypatch.setattr("inference.preprocessing.load_and_prepare", lambda data, config: data)
    assert services.prediction_explain(prediction_id=prediction.pk) == "failed"
    prediction.refresh_from_db()
    assert prediction.saliency_error == "OSError; the server log has the details"
