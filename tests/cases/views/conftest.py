"""Fixtures for the clinician page tests: a patient, stored images and predictions.

Images go through the upload service (so each has a real stored file); predictions and member
votes are written directly with a ``ModelVersion`` row, no ensemble runs in these tests.
"""

import pytest
from django.core.files.storage import default_storage

from cases import services
from cases.models import MemberVote, Prediction, SmearImage
from inference.models import ModelVersion
from tests.images import upload

CLASS_NAMES = ["Benign", "Early", "Pre", "Pro"]
MEMBERS = ["ResNet50", "VGG16", "MobileNetV2", "Xception", "NASNetLarge"]


@pytest.fixture
def patient(clinician):
    return services.patient_create(
        owner=clinician, record_number="MRN-100", display_label="Patient A-17", birth_year=2014
    )


@pytest.fixture
def image(patient, clinician):
    return services.smear_image_upload(
        patient=patient, file=upload("field-1.png", seed=1), uploaded_by=clinician
    )


@pytest.fixture
def make_version(db):
    def make(number: int, *, is_demo: bool = False, status: str = "retired") -> ModelVersion:
        return ModelVersion.objects.create(
            version=number,
            status=status,
            is_demo=is_demo,
            members=[{"name": name, "architecture": name} for name in MEMBERS],
            class_names=CLASS_NAMES,
        )

    return make


@pytest.fixture
def make_prediction():
    def make(
        image: SmearImage,
        version: ModelVersion,
        member_labels: list[str],
        probabilities: dict[str, float],
        *,
        label: str | None = None,
        agreement: str | None = None,
    ) -> Prediction:
        counts = {name: member_labels.count(name) for name in CLASS_NAMES}
        label = label or max(CLASS_NAMES, key=lambda c: (counts[c], probabilities[c]))
        votes = counts[label]
        if agreement is None:
            n = len(member_labels)
            agreement = "unanimous" if votes == n else "majority" if votes * 2 > n else "split"
        prediction = Prediction.objects.create(
            image=image,
            model_version=version,
            label=label,
            probabilities=probabilities,
            votes=votes,
            member_count=len(member_labels),
            agreement=agreement,
            inference_ms=123.4,
        )
        for name, vote in zip(MEMBERS, member_labels, strict=True):
            member_probs = {c: (0.85 if c == vote else 0.05) for c in CLASS_NAMES}
            MemberVote.objects.create(
                prediction=prediction, member_name=name, label=vote, probabilities=member_probs
            )
        SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.DONE)
        image.refresh_from_db()
        return prediction

    return make


def stored_smear_files() -> list[str]:
    """Every stored smear file. Media is shared by a session's tests: compare before/after."""
    try:
        dirs, _ = default_storage.listdir("smears")
    except FileNotFoundError:
        return []
    return sorted(f"{d}/{f}" for d in dirs for f in default_storage.listdir(f"smears/{d}")[1])
