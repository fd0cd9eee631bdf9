"""Test data for the API, admin and permission tests: model versions and predictions.

Predictions are written directly (no ensemble runs here); images go through the upload service,
so each has a real stored file.
"""

from django.db.models import Max

from cases import services
from cases.models import MemberVote, Prediction, SmearImage
from inference.models import ModelVersion
from tests.images import upload

CLASS_NAMES = ["Benign", "Early", "Pre", "Pro"]
MEMBERS = ["VGG16", "ResNet50", "DenseNet121", "MobileNetV2", "EfficientNetB0"]


def make_model_version(*, is_demo=True, status=ModelVersion.Status.RETIRED) -> ModelVersion:
    number = (ModelVersion.objects.aggregate(n=Max("version"))["n"] or 0) + 1
    return ModelVersion.objects.create(
        version=number,
        status=status,
        is_demo=is_demo,
        members=[{"name": name, "architecture": name} for name in MEMBERS],
        class_names=CLASS_NAMES,
    )


def _probabilities(label: str, top: float) -> dict[str, float]:
    rest = (1.0 - top) / (len(CLASS_NAMES) - 1)
    return {name: round(top if name == label else rest, 4) for name in CLASS_NAMES}


def make_prediction(
    image: SmearImage,
    *,
    label: str = "Pro",
    member_labels: list[str] | None = None,
    model_version: ModelVersion | None = None,
) -> Prediction:
    """A finished classification with one vote per member; ``member_labels`` sets the votes."""
    member_labels = member_labels or [label, label, label, label, "Pre"]
    votes = sum(vote == label for vote in member_labels)
    agreement = (
        Prediction.Agreement.UNANIMOUS
        if votes == len(member_labels)
        else Prediction.Agreement.MAJORITY
        if votes > len(member_labels) / 2
        else Prediction.Agreement.SPLIT
    )
    prediction = Prediction.objects.create(
        image=image,
        model_version=model_version or make_model_version(),
        label=label,
        probabilities=_probabilities(label, 0.7),
        votes=votes,
        member_count=len(member_labels),
        agreement=agreement,
        inference_ms=42.5,
    )
    MemberVote.objects.bulk_create(
        MemberVote(
            prediction=prediction,
            member_name=name,
            label=vote,
            probabilities=_probabilities(vote, 0.8),
        )
        for name, vote in zip(MEMBERS, member_labels, strict=False)
    )
    SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.DONE)
    image.refresh_from_db()
    return prediction


def make_image(patient, user, *, seed: int = 0, name: str = "smear.png") -> SmearImage:
    return services.smear_image_upload(
        patient=patient, file=upload(name, seed=seed), uploaded_by=user
    )
