"""Grad-CAM overlays of a saved prediction: the follow-up task after classification.

Classification waits for this at most one member's map: ``saliency_enqueue`` is called once
the prediction's transaction commits, the task runs after the images queued before it, and it
classifies what waits before its maps and between the members' maps (``cases.tasks``). Idempotent: a
prediction whose maps are stored is left alone, and two deliveries cannot both store maps (the
row is locked while the maps are written). Every outcome is a state on the prediction that the
image page shows: ``done``, ``failed`` with the reason, or ``unavailable`` (the version is no
longer the one the worker serves, or its members have no feature map to explain).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import transaction

from ..models import Prediction, SaliencyMap

logger = logging.getLogger(__name__)
Saliency = Prediction.Saliency


@dataclass(frozen=True)
class Overlay:
    member: str  # "" for the ensemble
    png: bytes
    peak: tuple[float, float]  # (x, y) as fractions of the image


def saliency_enqueue(prediction_id: int) -> None:
    """Send the follow-up task; never raises (a lost send leaves the maps ``pending``)."""
    from ..tasks import explain_prediction

    try:
        explain_prediction.delay(prediction_id)
    except Exception:  # noqa: BLE001 - the prediction is saved; the maps are a bonus
        logger.exception("could not queue the Grad-CAM maps of prediction %s", prediction_id)


def prediction_explain(*, prediction_id: int, between: Callable[[], object] | None = None) -> str:
    """Compute and store the Grad-CAM overlays of one prediction; the resulting status.
    ``between`` runs between two members' maps (``GradCam.maps``)."""
    from inference.engine import get_engine

    prediction = (
        Prediction.objects.select_related("image", "model_version").filter(pk=prediction_id).first()
    )
    if prediction is None or prediction.saliency_status == Saliency.DONE:
        return "skipped"
    engine = get_engine()
    if engine is None or engine.version.pk != prediction.model_version_id:
        return _finish(
            prediction_id,
            Saliency.UNAVAILABLE,
            f"model {prediction.model_version.label} is no longer the active version",
        )
    try:
        overlays = _overlays(engine, prediction, between)
    except Exception as exc:  # noqa: BLE001 - any failure ends in a state the page shows
        logger.exception("Grad-CAM of prediction %s failed", prediction_id)
        return _finish(prediction_id, Saliency.FAILED, _failure_reason(exc))
    return _store(prediction_id, prediction.label, overlays)


def _failure_reason(exc: Exception) -> str:
    """What the image page says of a failure: never its text, which may name the server's
    files (the log has it, with the traceback)."""
    if isinstance(exc, ImageUnreadable):
        return (
            "the image file could not be read: it is missing or damaged, and an administrator "
            "must restore it (the server log says which)"
        )
    return f"{type(exc).__name__}; the server log has the details"


class ImageUnreadable(Exception):
    """The smear's stored file could not be read or decoded (not the model's failure)."""


def _overlays(engine, prediction: Prediction, between=None) -> list[Overlay]:
    from inference import gradcam, preprocessing
    from inference.exceptions import ImageDecodeError

    try:
        with prediction.image.file.open("rb") as fh:
            prepared = preprocessing.load_and_prepare(fh.read(), engine.preprocessing)
    except (OSError, ImageDecodeError) as exc:
        raise ImageUnreadable(str(exc)) from exc
    maps = _explainer(engine).maps(prepared, prediction.label, between=between)
    size = float(prepared.shape[0])
    overlays = []
    for member, heat in [("", maps.ensemble), *maps.members.items()]:
        row, col = gradcam.peak(heat)
        overlays.append(
            Overlay(
                member,
                gradcam.overlay_png(prepared, heat),
                ((col + 0.5) / size, (row + 0.5) / size),
            )
        )
    return overlays


_EXPLAINERS: dict[int, object] = {}


def _explainer(engine):
    """One ``GradCam`` per loaded engine (its gradient functions are built once)."""
    from inference.engine import on_release
    from inference.gradcam import GradCam

    on_release(_EXPLAINERS.clear)  # a version switch frees these models with the engine's
    key = id(engine.fused_model)
    if key not in _EXPLAINERS:
        _EXPLAINERS.clear()
        _EXPLAINERS[key] = GradCam(engine)
    return _EXPLAINERS[key]


def _store(prediction_id: int, class_name: str, overlays: list[Overlay]) -> str:
    saved: list[SaliencyMap] = []
    try:
        with transaction.atomic():
            prediction = Prediction.objects.select_for_update().get(pk=prediction_id)
            if prediction.saliency_status == Saliency.DONE:
                return "skipped"
            for overlay in overlays:
                row = SaliencyMap(
                    prediction=prediction,
                    member=overlay.member,
                    class_name=class_name,
                    peak_x=overlay.peak[0],
                    peak_y=overlay.peak[1],
                )
                row.file.save("map.png", ContentFile(overlay.png), save=False)
                saved.append(row)
                row.save()
            prediction.saliency_status = Saliency.DONE
            prediction.saliency_error = ""
            prediction.save(update_fields=["saliency_status", "saliency_error"])
    except BaseException:
        for row in saved:  # no file without its row
            row.file.delete(save=False)
        raise
    return Saliency.DONE


def _finish(prediction_id: int, status: str, reason: str) -> str:
    Prediction.objects.filter(pk=prediction_id).exclude(saliency_status=Saliency.DONE).update(
        saliency_status=status, saliency_error=reason[:500]
    )
    logger.info("Grad-CAM of prediction %s: %s (%s)", prediction_id, status, reason)
    return status
