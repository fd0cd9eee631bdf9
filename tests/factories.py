"""Test data shared by the view, API, admin, service and permission tests.

Model versions are bare ``ModelVersion`` rows without artifacts: nothing is loaded or run.
Predictions are made as a classification makes them, minus the network: one probability row per
member goes through the real ``inference.voting.vote`` (which decides label, votes, agreement and
the mean probabilities) and is saved by the real ``cases.services.prediction_record``. Images go
through the upload service, so each has a real stored file.
"""

import errno
from collections.abc import Mapping, Sequence

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from cases import services
from cases.models import Patient, Prediction, SmearImage, Specimen
from inference.demo import DEMO_ARCHITECTURES, DEMO_CLASS_NAMES
from inference.models import ModelVersion
from inference.voting import vote
from tests.images import upload

MEMBER_NAMES = list(DEMO_ARCHITECTURES)  # the portal's five architectures, in member order
CLASS_NAMES = list(DEMO_CLASS_NAMES)
DEFAULT_MEMBER_LABELS = ["Pro", "Pro", "Pro", "Pro", "Pre"]  # a 4 of 5 majority for Pro
CHOSEN_PROBABILITY = 0.85  # a member's probability for its own vote, the rest shared evenly


def make_model_version(
    version: int | None = None,
    *,
    is_demo: bool = False,
    status: str = ModelVersion.Status.RETIRED,
) -> ModelVersion:
    """A version row with the five members; ``version`` defaults to the next free number."""
    if version is None:
        version = (ModelVersion.objects.aggregate(n=Max("version"))["n"] or 0) + 1
    return ModelVersion.objects.create(
        version=version,
        status=status,
        is_demo=is_demo,
        members=[{"name": name, "architecture": name} for name in MEMBER_NAMES],
        class_names=CLASS_NAMES,
    )


def make_prediction(
    image: SmearImage,
    *,
    version: ModelVersion | None = None,
    member_labels: Sequence[str] | None = None,
    member_probabilities: Sequence[Mapping[str, float]] | None = None,
    inference_ms: float = 123.4,
) -> Prediction:
    """A finished classification of ``image`` by ``version`` (a new one if not given).

    Give the members' votes as ``member_labels`` (each member puts ``CHOSEN_PROBABILITY`` on its
    vote) or their full rows as ``member_probabilities`` (one ``{class: p}`` per member, in
    member order); by default ``DEFAULT_MEMBER_LABELS``. The image is marked done.
    """
    if member_labels is not None and member_probabilities is not None:
        raise TypeError("give member_labels or member_probabilities, not both")
    version = version or make_model_version()
    classes = version.class_names
    if member_probabilities is None:
        rest = (1.0 - CHOSEN_PROBABILITY) / (len(classes) - 1)
        member_probabilities = [
            {c: CHOSEN_PROBABILITY if c == label else rest for c in classes}
            for label in (member_labels or DEFAULT_MEMBER_LABELS)
        ]
    rows = [[member[c] for c in classes] for member in member_probabilities]
    result = vote(rows, classes, version.member_names, inference_ms=inference_ms)
    with transaction.atomic():
        prediction = services.prediction_record(image=image, version=version, result=result)
        SmearImage.objects.filter(pk=image.pk).update(status=SmearImage.Status.DONE)
    image.refresh_from_db()
    return prediction


def home_lab(user):
    """The user's first lab (the test users belong to one)."""
    return user.memberships.select_related("lab").order_by("id").first().lab


def make_patient(user, record_number="MRN-1", display_label="Patient", **fields) -> Patient:
    return services.patient_create(
        lab=home_lab(user),
        created_by=user,
        record_number=record_number,
        display_label=display_label,
        **fields,
    )


def default_specimen(patient: Patient, user=None) -> Specimen:
    """The patient's specimen ``S-<patient id>``, registered on first use (by ``user``, default
    whoever registered the patient)."""
    found = Specimen.objects.filter(patient=patient, accession_number=f"S-{patient.pk}").first()
    return found or services.specimen_create(
        patient=patient,
        created_by=user or patient.created_by,
        accession_number=f"S-{patient.pk}",
    )


def make_image(patient, user, *, seed: int = 0, name: str = "smear.png", specimen=None):
    return services.smear_image_upload(
        specimen=specimen or default_specimen(patient, user),
        file=upload(name, seed=seed),
        uploaded_by=user,
    )


def fill_the_disk(monkeypatch, *, on: str) -> None:
    """The storage's save of a name containing ``on`` writes half its bytes and fails as a
    full disk does (FileSystemStorage leaves the partial file; the error names the path)."""
    from django.core.files.storage import FileSystemStorage

    real_save = FileSystemStorage._save

    def save(storage, name, content):
        if on not in name:
            return real_save(storage, name, content)
        data = content.read()
        real_save(storage, name, ContentFile(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device", storage.path(name))

    monkeypatch.setattr(FileSystemStorage, "_save", save)


def pixels_digest(**image_kwargs) -> str:
    """The SHA-256 (and so the stored names) of ``tests.images.upload(**image_kwargs)``."""
    from cases.validation import store_as_pixels
    from tests.images import image_bytes

    return store_as_pixels(image_bytes(**image_kwargs)).sha256


def stored_smear_files() -> list[str]:
    """Every stored smear file and thumbnail. Media is shared by a session's tests: compare
    before/after."""
    found = []
    for top in ("smears", "thumbnails"):
        try:
            dirs, _ = default_storage.listdir(top)
        except FileNotFoundError:
            continue
        found += [f"{top}/{d}/{f}" for d in dirs for f in default_storage.listdir(f"{top}/{d}")[1]]
    return sorted(found)
