"""Reads. Every query a view, the API or a task makes goes through here, already scoped to a user.

A member of a lab sees the lab's patients, specimens and images; staff (admins) see every lab.
Objects outside a user's scope are reported as missing (404), never as forbidden, so their
existence does not leak. ``review`` holds the queue and case summaries, ``qa`` the lab's measure
of the model.
"""

from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from ..models import ImageFlag, Lab, MemberVote, Patient, Prediction, SmearImage, Specimen, Verdict
from ..roles import Capability, lab_ids
from .saliency import saliency_map_get as saliency_map_get
from .saliency import saliency_maps as saliency_maps


def _in_labs(qs: QuerySet, user, path: str, capability=Capability.VIEW) -> QuerySet:
    """``qs`` limited to the labs where ``user`` may ``capability`` (``path`` leads to the lab)."""
    ids = lab_ids(user, capability)
    return qs if ids is None else qs.filter(**{f"{path}__in": ids})


def lab_list(*, user, capability=Capability.VIEW) -> QuerySet[Lab]:
    return _in_labs(Lab.objects.all(), user, "pk", capability).order_by("name")


def lab_get(*, user, pk, capability=Capability.VIEW) -> Lab:
    return get_object_or_404(lab_list(user=user, capability=capability), pk=pk)


def patient_list(*, user, search: str = "") -> QuerySet[Patient]:
    qs = Patient.objects.select_related("lab", "created_by").annotate(
        image_count=Count("images", distinct=True), last_upload=Max("images__uploaded_at")
    )
    qs = _in_labs(qs, user, "lab")
    search = (search or "").strip()
    if search:
        qs = qs.filter(Q(record_number__icontains=search) | Q(display_label__icontains=search))
    return qs.order_by("-created_at", "-id")


def patient_get(*, user, pk) -> Patient:
    return get_object_or_404(patient_list(user=user), pk=pk)


def specimen_list(*, user, patient: Patient | None = None, search: str = "") -> QuerySet[Specimen]:
    qs = Specimen.objects.select_related("patient", "lab").annotate(
        image_count=Count("images", distinct=True)
    )
    qs = _in_labs(qs, user, "lab")
    if patient is not None:
        qs = qs.filter(patient=patient)
    search = (search or "").strip()
    if search:
        qs = qs.filter(
            Q(accession_number__icontains=search) | Q(patient__record_number__icontains=search)
        )
    return qs.order_by("-created_at", "-id")


def specimen_get(*, user, pk) -> Specimen:
    return get_object_or_404(specimen_list(user=user), pk=pk)


def image_list(
    *, user, patient: Patient | None = None, specimen: Specimen | None = None
) -> QuerySet[SmearImage]:
    qs = _in_labs(images_with_review(), user, "patient__lab")
    if patient is not None:
        qs = qs.filter(patient=patient)
    if specimen is not None:
        qs = qs.filter(specimen=specimen)
    return qs.order_by("-uploaded_at", "-id")


def images_with_review() -> QuerySet[SmearImage]:
    """Images with their predictions (newest first), active flags and verdicts prefetched;
    not limited to any user's labs (callers check access first)."""
    return SmearImage.objects.select_related("patient", "specimen", "uploaded_by").prefetch_related(
        Prefetch(
            "predictions",
            queryset=Prediction.objects.select_related("model_version").order_by(
                "-created_at", "-id"
            ),
        ),
        "predictions__saliency_maps",
        Prefetch("flags", queryset=ImageFlag.objects.filter(active=True), to_attr="active_flags"),
        Prefetch(
            "verdicts",
            queryset=Verdict.objects.select_related("reviewer").order_by("-id"),
            to_attr="verdict_history",
        ),
    )


def image_get(*, user, pk) -> SmearImage:
    return get_object_or_404(image_list(user=user), pk=pk)


def prediction_list(
    *,
    user,
    image: SmearImage | None = None,
    label: str = "",
    agreement: str = "",
    model_version: int | None = None,
) -> QuerySet[Prediction]:
    """``label`` matches case-insensitively; ``model_version`` is the version number (3 in v3)."""
    qs = Prediction.objects.select_related(
        "model_version", "image", "image__patient"
    ).prefetch_related(Prefetch("member_votes", queryset=MemberVote.objects.order_by("id")))
    qs = _in_labs(qs, user, "image__patient__lab")
    if image is not None:
        qs = qs.filter(image=image)
    if label:
        qs = qs.filter(label__iexact=label)
    if agreement:
        qs = qs.filter(agreement=agreement)
    if model_version is not None:
        qs = qs.filter(model_version__version=model_version)
    return qs.order_by("-created_at", "-id")


def prediction_get(*, user, pk) -> Prediction:
    return get_object_or_404(prediction_list(user=user), pk=pk)


def image_latest_prediction(*, image: SmearImage) -> Prediction | None:
    return (
        Prediction.objects.filter(image=image)
        .select_related("model_version")
        .prefetch_related(Prefetch("member_votes", queryset=MemberVote.objects.order_by("id")))
        .order_by("-created_at", "-id")
        .first()
    )


def queued_image_ids() -> list[int]:
    """Images waiting for a model (for the sweep after activation or worker start)."""
    return list(
        SmearImage.objects.filter(status=SmearImage.Status.QUEUED)
        .order_by("uploaded_at", "id")
        .values_list("id", flat=True)
    )
