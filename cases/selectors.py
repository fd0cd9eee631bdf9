"""Reads. Every query a view, the API or a task makes goes through here, already scoped to a user.

A clinician sees only the patients they own; staff (admins) see all. Objects outside a user's
scope are reported as missing (404), never as forbidden, so their existence does not leak.
"""

from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from .models import MemberVote, Patient, Prediction, SmearImage


def _sees_all(user) -> bool:
    return bool(user.is_active and user.is_staff)


def patient_list(*, user, search: str = "") -> QuerySet[Patient]:
    qs = Patient.objects.select_related("owner").annotate(
        image_count=Count("images", distinct=True), last_upload=Max("images__uploaded_at")
    )
    if not _sees_all(user):
        qs = qs.filter(owner=user)
    search = (search or "").strip()
    if search:
        qs = qs.filter(Q(record_number__icontains=search) | Q(display_label__icontains=search))
    return qs.order_by("-created_at", "-id")


def patient_get(*, user, pk) -> Patient:
    return get_object_or_404(patient_list(user=user), pk=pk)


def image_list(*, user, patient: Patient | None = None) -> QuerySet[SmearImage]:
    qs = SmearImage.objects.select_related("patient", "uploaded_by").prefetch_related(
        Prefetch(
            "predictions",
            queryset=Prediction.objects.select_related("model_version").order_by(
                "-created_at", "-id"
            ),
        )
    )
    if not _sees_all(user):
        qs = qs.filter(patient__owner=user)
    if patient is not None:
        qs = qs.filter(patient=patient)
    return qs.order_by("-uploaded_at", "-id")


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
    if not _sees_all(user):
        qs = qs.filter(image__patient__owner=user)
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
