"""Writes. Views, the API, the admin and Celery tasks call these; none writes models directly.

Each service validates (``full_clean``), works in one transaction, writes an audit event in that
transaction, and defers Celery work to ``transaction.on_commit`` so a worker never sees a row
that is not committed yet.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction

from .models import AuditEvent, MemberVote, Patient, Prediction, SmearImage, smear_upload_to
from .validation import check_smear_image

logger = logging.getLogger(__name__)

PATIENT_FIELDS = ("record_number", "display_label", "sex", "birth_year")


class TransientClassificationError(Exception):
    """Classification could not run now (row busy, storage or model hiccup); retry later."""


class PermanentClassificationError(Exception):
    """Classification can never succeed for this image; the reason is recorded on the image."""


# --- Audit ------------------------------------------------------------------------------------


def audit_event_create(
    *, event_type, acting_user=None, patient=None, image=None, old=None, new=None
):
    extra = {}
    if old is not None:
        extra["old"] = old
    if new is not None:
        extra["new"] = new
    return AuditEvent.objects.create(
        event_type=event_type,
        acting_user=acting_user,
        patient=patient,
        image=image,
        extra_data=extra,
    )


# --- Patients ---------------------------------------------------------------------------------


def patient_create(*, owner, record_number, display_label, sex="", birth_year=None) -> Patient:
    patient = Patient(
        owner=owner,
        record_number=(record_number or "").strip(),
        display_label=(display_label or "").strip(),
        sex=sex or "",
        birth_year=birth_year,
    )
    patient.full_clean()
    with transaction.atomic():
        patient.save()
        audit_event_create(
            event_type=AuditEvent.EventType.PATIENT_CREATED,
            acting_user=owner,
            patient=patient,
            new=_patient_values(patient),
        )
    return patient


def patient_update(*, patient: Patient, user, data: dict) -> Patient:
    """Change the given fields; returns early (no audit row) when nothing changed."""
    old, new = {}, {}
    for name in PATIENT_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, str):
            value = value.strip()
        if getattr(patient, name) != value:
            old[name], new[name] = getattr(patient, name), value
            setattr(patient, name, value)
    if not new:
        return patient
    patient.full_clean()
    with transaction.atomic():
        patient.save(update_fields=[*new, "updated_at"])
        audit_event_create(
            event_type=AuditEvent.EventType.PATIENT_UPDATED,
            acting_user=user,
            patient=patient,
            old=old,
            new=new,
        )
    return patient


def _patient_values(patient: Patient) -> dict:
    return {name: getattr(patient, name) for name in PATIENT_FIELDS}


# --- Uploads ----------------------------------------------------------------------------------


@dataclass
class UploadReport:
    stored: list[SmearImage] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one readable message per rejected file


def smear_image_upload(*, patient: Patient, file, uploaded_by) -> SmearImage:
    """Validate, store under a content-hash name, create the queued row, enqueue on commit.

    Raises ``ValidationError`` with a readable message; on any failure nothing stays behind:
    neither a row nor a stored file.
    """
    name = (getattr(file, "name", "") or "upload").rsplit("/", 1)[-1][:255]
    checked = check_smear_image(file)
    if SmearImage.objects.filter(patient=patient, sha256=checked.sha256).exists():
        raise ValidationError(
            f"“{name}” was already uploaded for this patient.", code="duplicate_image"
        )
    image = SmearImage(
        patient=patient,
        original_name=name,
        sha256=checked.sha256,
        width=checked.width,
        height=checked.height,
        format=checked.format,
        size_bytes=checked.size_bytes,
        uploaded_by=uploaded_by,
        status=SmearImage.Status.QUEUED,
    )
    stored_name = None  # set only when this call wrote the file, so only then is it removed
    try:
        with transaction.atomic():
            content_name = smear_upload_to(image, name)
            if default_storage.exists(content_name):
                # Content-addressed: the same bytes are already stored (another patient's copy).
                image.file.name = content_name
            else:
                image.file.save(name, ContentFile(checked.content), save=False)
                stored_name = image.file.name
            image.save()
            audit_event_create(
                event_type=AuditEvent.EventType.IMAGE_UPLOADED,
                acting_user=uploaded_by,
                patient=patient,
                image=image,
                new={"original_name": name, "sha256": checked.sha256},
            )
            transaction.on_commit(lambda: enqueue_classification(image.pk))
    except IntegrityError as exc:
        _delete_stored(stored_name)
        raise ValidationError(
            f"“{name}” was already uploaded for this patient.", code="duplicate_image"
        ) from exc
    except BaseException:
        _delete_stored(stored_name)
        raise
    return image


def smear_images_upload(*, patient: Patient, files, uploaded_by) -> UploadReport:
    """Store every valid file; report every invalid one. Each file is all-or-nothing."""
    files = list(files)
    report = UploadReport()
    if not files:
        report.rejected.append("Choose at least one image file.")
        return report
    limit = settings.LP_MAX_FILES_PER_UPLOAD
    if len(files) > limit:
        report.rejected.append(f"{len(files)} files were sent; at most {limit} at a time.")
        return report
    for file in files:
        try:
            report.stored.append(
                smear_image_upload(patient=patient, file=file, uploaded_by=uploaded_by)
            )
        except ValidationError as exc:
            report.rejected.extend(exc.messages)
    return report


def _delete_stored(name):
    if not name:
        return
    try:
        default_storage.delete(name)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        logger.exception("could not delete %s after a failed upload", name)


def enqueue_classification(image_id: int) -> None:
    """Send the task. A broker outage leaves the image queued; the worker's start-up sweep and
    the activation sweep pick it up later, so the upload itself never fails for it."""
    from .tasks import classify_image

    try:
        classify_image.delay(image_id)
    except Exception:  # noqa: BLE001
        logger.exception("could not enqueue classification of image %s", image_id)


def enqueue_waiting_images() -> int:
    from .selectors import queued_image_ids

    ids = queued_image_ids()
    for image_id in ids:
        enqueue_classification(image_id)
    return len(ids)


def image_requeue(*, image: SmearImage, user) -> SmearImage:
    """Queue an image again: after a failure, or to classify it with the newly active model."""
    with transaction.atomic():
        locked = SmearImage.objects.select_for_update().get(pk=image.pk)
        if locked.status in (SmearImage.Status.QUEUED, SmearImage.Status.PROCESSING):
            return locked
        old_status = locked.status
        locked.status = SmearImage.Status.QUEUED
        locked.error_message = ""
        locked.save(update_fields=["status", "error_message", "updated_at"])
        audit_event_create(
            event_type=AuditEvent.EventType.IMAGE_REQUEUED,
            acting_user=user,
            patient=locked.patient,
            image=locked,
            old={"status": old_status},
            new={"status": locked.status},
        )
        transaction.on_commit(lambda: enqueue_classification(locked.pk))
    return locked


# --- Classification (called by the Celery task) ---------------------------------------------


def image_classify(*, image_id: int) -> str:
    """Classify one image with the active ensemble. Idempotent; returns what happened.

    ``"waiting"``: no active model; the image stays queued until a version is activated.
    ``"skipped"``: already finished (a duplicate delivery), or the image is gone.
    ``"done"``: a Prediction with its member votes was saved.
    Raises ``TransientClassificationError`` (retry) or ``PermanentClassificationError``.
    """
    from inference.engine import get_engine
    from inference.exceptions import InferenceError

    try:
        engine = get_engine()
    except InferenceError as exc:
        raise TransientClassificationError(f"the model could not be loaded: {exc}") from exc
    if engine is None:
        return "waiting"
    version = engine.version

    with transaction.atomic():
        image = _lock_image(image_id)
        if image is None or image.status in (SmearImage.Status.DONE, SmearImage.Status.FAILED):
            return "skipped"
        if Prediction.objects.filter(image=image, model_version=version).exists():
            image.status = SmearImage.Status.DONE
            image.save(update_fields=["status", "updated_at"])
            return "skipped"
        image.status = SmearImage.Status.PROCESSING
        image.attempts += 1
        image.save(update_fields=["status", "attempts", "updated_at"])

    try:
        with image.file.open("rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise TransientClassificationError(f"the stored image could not be read: {exc}") from exc

    try:
        result = engine.classify([content])[0]
    except InferenceError as exc:
        if exc.permanent:
            image_mark_failed(image_id=image_id, message=str(exc))
            raise PermanentClassificationError(str(exc)) from exc
        raise TransientClassificationError(str(exc)) from exc

    try:
        with transaction.atomic():
            image = _lock_image(image_id)
            if image is None:
                return "skipped"
            prediction_record(image=image, version=version, result=result)
            image.status = SmearImage.Status.DONE
            image.error_message = ""
            image.save(update_fields=["status", "error_message", "updated_at"])
            audit_event_create(
                event_type=AuditEvent.EventType.IMAGE_CLASSIFIED,
                patient=image.patient,
                image=image,
                new={
                    "label": result.label,
                    "votes": result.votes,
                    "agreement": result.agreement,
                    "model_version": version.version,
                },
            )
    except IntegrityError:
        # Another delivery of the same task saved this version's prediction first.
        SmearImage.objects.filter(pk=image_id).update(status=SmearImage.Status.DONE)
        return "skipped"
    return "done"


def prediction_record(*, image: SmearImage, version, result) -> Prediction:
    """Save one ensemble result (an ``inference.voting.EnsembleResult``) with its member votes.

    The caller owns the transaction and the image's status."""
    prediction = Prediction.objects.create(
        image=image,
        model_version=version,
        label=result.label,
        probabilities=result.probabilities,
        votes=result.votes,
        member_count=result.member_count,
        agreement=result.agreement,
        inference_ms=result.inference_ms,
    )
    MemberVote.objects.bulk_create(
        MemberVote(
            prediction=prediction, member_name=m.name, label=m.label, probabilities=m.probabilities
        )
        for m in result.members
    )
    return prediction


def image_mark_failed(*, image_id: int, message: str) -> None:
    """Record a failure a clinician can read; the image keeps its history."""
    text = (
        f"This image could not be classified: {message}. "
        "Upload a clearer image, or ask an administrator if the problem persists."
    )
    with transaction.atomic():
        image = SmearImage.objects.select_for_update().filter(pk=image_id).first()
        if image is None or image.status == SmearImage.Status.DONE:
            return
        old_status = image.status
        image.status = SmearImage.Status.FAILED
        image.error_message = text[:2000]
        image.save(update_fields=["status", "error_message", "updated_at"])
        audit_event_create(
            event_type=AuditEvent.EventType.IMAGE_FAILED,
            patient=image.patient,
            image=image,
            old={"status": old_status},
            new={"status": image.status, "error": message[:500]},
        )


def image_note_retry(*, image_id: int, message: str) -> None:
    """Put an image back in the queue after a transient error, saying so."""
    SmearImage.objects.filter(pk=image_id).exclude(status=SmearImage.Status.DONE).update(
        status=SmearImage.Status.QUEUED,
        error_message=f"A temporary problem delayed classification ({message[:300]}); retrying.",
    )


def _lock_image(image_id: int) -> SmearImage | None:
    try:
        return SmearImage.objects.select_for_update(nowait=True).get(pk=image_id)
    except SmearImage.DoesNotExist:
        return None
    except DatabaseError as exc:  # the row is locked by another delivery
        raise TransientClassificationError("the image is being processed elsewhere") from exc


# --- Accounts for a first run ------------------------------------------------------------------


def user_ensure(*, username: str, password: str, is_staff: bool = False) -> tuple[object, bool]:
    """Create the account if it does not exist yet; never changes an existing one."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    if is_staff:
        user = User.objects.create_superuser(username=username, password=password, email="")
    else:
        user = User.objects.create_user(username=username, password=password)
    return user, True
