"""Uploads: validate, store the pixels and a thumbnail under content-hash names, create the
queued row with its audit event, and send the classification task once the row is committed.

All or nothing per file: a rejected or failed file leaves neither a row nor a stored file. Files
are content-addressed, so the same bytes uploaded for two patients share one file: storing it and
removing it after a failed upload take a lock on its content, so a failed upload never deletes a
file that another upload has just decided to reuse.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from ..models import AuditEvent, SmearImage, Specimen, smear_upload_to, thumbnail_upload_to
from ..roles import Capability, require
from ..validation import check_smear_image
from .audit import audit_event_create
from .lifecycle import enqueue_on_commit
from .specimens import lock_specimen

logger = logging.getLogger(__name__)


@dataclass
class UploadReport:
    stored: list[SmearImage] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one readable message per rejected file
    server_faults: int = 0  # of them, files the server could not store (not the files' fault)


def smear_image_upload(*, specimen: Specimen, file, uploaded_by, address=None) -> SmearImage:
    """Validate, store, create the queued row in ``specimen``, enqueue on commit.

    Raises ``ValidationError`` with a readable message (also when the specimen is signed out),
    ``roles.RoleRequired`` when the user may not upload in the specimen's lab; on any failure
    nothing stays behind: neither a row nor a stored file.
    """
    require(uploaded_by, specimen.lab_id, Capability.REGISTER)
    _check_accepts_images(specimen)
    patient = specimen.patient
    name = _upload_name(file)
    checked = check_smear_image(file)
    if SmearImage.objects.filter(patient=patient, sha256=checked.sha256).exists():
        raise _duplicate(name)
    image = SmearImage(
        patient=patient,
        specimen=specimen,
        original_name=name,
        sha256=checked.sha256,
        width=checked.width,
        height=checked.height,
        format=checked.format,
        original_format=checked.original_format,
        size_bytes=checked.size_bytes,
        uploaded_by=uploaded_by,
        status=SmearImage.Status.QUEUED,
    )
    written: list[str] = []  # files this call wrote, so only those are removed on failure
    try:
        with transaction.atomic():
            # Lock the specimen: a sign-off in progress must not miss an image added meanwhile.
            _check_accepts_images(lock_specimen(specimen.pk))
            _content_lock(checked.sha256)  # until commit: no failed upload deletes what we reuse
            image.file.name = _store(smear_upload_to(image, name), checked.content, written)
            image.thumbnail.name = _store(
                thumbnail_upload_to(image, name), checked.thumbnail, written
            )
            image.save()
            audit_event_create(
                event_type=AuditEvent.EventType.IMAGE_UPLOADED,
                acting_user=uploaded_by,
                address=address,
                patient=patient,
                image=image,
                new={
                    "original_name": name,
                    "sha256": checked.sha256,
                    "original_format": checked.original_format,
                },
            )
            enqueue_on_commit(image.pk)
    except IntegrityError as exc:
        _delete_stored(written, checked.sha256)
        raise _duplicate(name) from exc
    except BaseException:
        _delete_stored(written, checked.sha256)
        raise
    return image


def smear_images_upload(*, specimen: Specimen, files, uploaded_by, address=None) -> UploadReport:
    """Store every valid file; report every invalid one, and every one the server could not
    store (a full disk, a storage fault: logged for the administrator). Each file is
    all-or-nothing."""
    require(uploaded_by, specimen.lab_id, Capability.REGISTER)
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
                smear_image_upload(
                    specimen=specimen, file=file, uploaded_by=uploaded_by, address=address
                )
            )
        except ValidationError as exc:
            report.rejected.extend(exc.messages)
        except StorageFailed:  # its files are removed; the others may still be stored
            name = _upload_name(file)
            logger.exception("%r could not be stored in specimen %s", name, specimen.pk)
            report.server_faults += 1
            report.rejected.append(
                f"“{name}” could not be stored on the server, and nothing of it was kept. "
                "Tell an administrator (the server log has the details)."
            )
    return report


def _upload_name(file) -> str:
    return (getattr(file, "name", "") or "upload").rsplit("/", 1)[-1][:255]


def _check_accepts_images(specimen: Specimen) -> None:
    if specimen.is_signed:
        raise ValidationError(
            f"Specimen {specimen.accession_number} is signed out: it takes no new images. "
            "Register a new specimen for a new smear.",
            code="specimen_signed",
        )


class StorageFailed(OSError):
    """The storage could not keep a file (a full disk, an unreachable bucket): the server's
    problem, not the upload's. Whatever the backend raised is its cause."""


def _store(content_name: str, content: bytes, written: list[str]) -> str:
    """Content-addressed: the same bytes stored before (another patient's copy) are reused. Call
    it holding the content's lock (``_content_lock``): a file found there is then no other
    upload's write in progress, and one there after a failed save is this call's.

    A copy of another size is a write cut short (a crash) and is written again (a thumbnail
    another JPEG encoder made is too: the same image's, harmlessly). A save that fails part-way
    (a full disk) leaves its partial file under the name: it is removed at once, or the next
    upload of the same pixels would reuse it and be refused as a duplicate after."""
    try:
        if default_storage.exists(content_name):
            found = default_storage.size(content_name)
            if found == len(content):
                return content_name
            logger.warning(
                "%s holds %s bytes, not %s: a damaged copy, written again",
                content_name,
                found,
                len(content),
            )
            default_storage.delete(content_name)
    except Exception as exc:  # nothing written: what is there stays
        raise StorageFailed(f"could not look up {content_name}: {exc}") from exc
    try:
        stored = default_storage.save(content_name, ContentFile(content))
    except BaseException as exc:
        _delete_partial(content_name)
        if isinstance(exc, Exception):
            raise StorageFailed(f"could not store {content_name}: {exc}") from exc
        raise
    written.append(stored)
    return stored


def _delete_partial(name: str) -> None:
    """Remove what a failed save left under ``name`` (nothing was there before it)."""
    try:
        if default_storage.exists(name):
            default_storage.delete(name)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        logger.exception("could not delete the partial file %s after a failed save", name)


def _duplicate(name: str) -> ValidationError:
    return ValidationError(
        f"“{name}” was already uploaded for this patient.", code="duplicate_image"
    )


def _content_lock(sha256: str) -> None:
    """Hold the lock on one content (to the end of the transaction): an upload from the moment
    it finds or writes the file until its row is committed, and the clean-up of a failed upload
    while it checks for rows and deletes. PostgreSQL: an advisory lock on the hash; SQLite's
    ``BEGIN IMMEDIATE`` (settings) already runs writing transactions one at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int(sha256[:15], 16)])


def _delete_stored(names: list[str], sha256: str) -> None:
    """Remove files a failed upload wrote, unless a row uses them meanwhile (the same bytes
    uploaded at the same moment for another patient reuse the content-addressed file)."""
    for name in names:
        try:
            with transaction.atomic():
                _content_lock(sha256)
                if SmearImage.objects.filter(Q(file=name) | Q(thumbnail=name)).exists():
                    continue
                default_storage.delete(name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            logger.exception("could not delete %s after a failed upload", name)


def image_thumbnail_ensure(*, image: SmearImage) -> str:
    """The stored thumbnail's name; made and stored once for images uploaded before thumbnails
    were made at upload time (the decoder's pixel limit still applies)."""
    if image.thumbnail and default_storage.exists(image.thumbnail.name):
        return image.thumbnail.name
    from inference.decoding import decode_image

    from ..validation import thumbnail_jpeg

    with default_storage.open(image.file.name, "rb") as fh:
        rgb = decode_image(fh.read(), max_pixels=settings.LP_MAX_IMAGE_PIXELS)
    thumbnail = thumbnail_jpeg(rgb)  # before the transaction: SQLite's write lock waits for none
    with transaction.atomic():
        _content_lock(image.sha256)  # as an upload's store: no failed upload deletes it
        name = _store(thumbnail_upload_to(image, image.original_name), thumbnail, [])
        SmearImage.objects.filter(pk=image.pk).update(thumbnail=name)
    image.thumbnail.name = name
    return name
