"""Reads of the Grad-CAM overlays stored with predictions (``cases.services.saliency``)."""

from dataclasses import dataclass

from django.shortcuts import get_object_or_404

from ..models import Prediction, SaliencyMap, SmearImage


@dataclass(frozen=True)
class SaliencyView:
    """What the image page shows: the status, and the ensemble's and members' overlays."""

    status: str
    status_label: str
    error: str
    class_name: str
    ensemble: SaliencyMap | None
    members: list[SaliencyMap]


def saliency_maps(prediction: Prediction) -> SaliencyView:
    rows = list(prediction.saliency_maps.all())
    ensemble = next((r for r in rows if r.is_ensemble), None)
    order = {name: i for i, name in enumerate(prediction.model_version.member_names)}
    members = sorted((r for r in rows if not r.is_ensemble), key=lambda r: order.get(r.member, 99))
    return SaliencyView(
        status=prediction.saliency_status,
        status_label=prediction.get_saliency_status_display(),
        error=prediction.saliency_error,
        class_name=ensemble.class_name if ensemble else prediction.label,
        ensemble=ensemble,
        members=members,
    )


def saliency_map_get(*, image: SmearImage, map_pk: int) -> SaliencyMap:
    """An overlay of one of ``image``'s predictions (the caller checked access to the image)."""
    return get_object_or_404(SaliencyMap.objects.filter(prediction__image=image), pk=map_pk)
