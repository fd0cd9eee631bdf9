"""Specimens (cases): register, correct, and the one function that moves a specimen's status.

``specimen_transition`` is the only place a specimen's status is assigned (grand-challenge's
shape: lock, check, act). A signed-out specimen is read-only: the services that change it or its
images refuse with ``SpecimenLocked``.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import AuditEvent, Patient, Specimen
from ..roles import Capability, require
from .audit import audit_event_create
from .cleaning import atomic_unique, full_clean

Status = Specimen.Status
EventType = AuditEvent.EventType
SPECIMEN_FIELDS = ("accession_number", "collection_date", "specimen_type", "clinical_question")

ALLOWED: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset({Status.IN_REVIEW}),
    Status.IN_REVIEW: frozenset({Status.SIGNED_OUT}),
    Status.SIGNED_OUT: frozenset({Status.AMENDED}),
    Status.AMENDED: frozenset({Status.AMENDED}),
}


class IllegalSpecimenTransition(Exception):
    pass


class SpecimenLocked(ValidationError):
    """The specimen is signed out; only an amendment changes it."""

    def __init__(self, specimen: Specimen, action: str = "be changed"):
        super().__init__(
            f"Specimen {specimen.accession_number} is signed out and cannot {action}. "
            "A hematologist may amend the sign-off with a reason.",
            code="specimen_signed",
        )


def specimen_create(
    *,
    patient: Patient,
    created_by,
    accession_number,
    collection_date=None,
    specimen_type=Specimen.Type.PERIPHERAL_BLOOD,
    clinical_question="",
    address=None,
) -> Specimen:
    """Register a specimen of ``patient`` in the patient's lab."""
    require(created_by, patient.lab_id, Capability.REGISTER)
    specimen = Specimen(
        lab_id=patient.lab_id,
        patient=patient,
        accession_number=(accession_number or "").strip(),
        collection_date=collection_date,
        specimen_type=specimen_type or Specimen.Type.PERIPHERAL_BLOOD,
        clinical_question=(clinical_question or "").strip(),
        created_by=created_by,
    )
    full_clean(specimen)
    with atomic_unique(specimen):
        specimen.save()
        audit_event_create(
            event_type=EventType.SPECIMEN_CREATED,
            acting_user=created_by,
            address=address,
            specimen=specimen,
            new=_values(specimen),
        )
    return specimen


def specimen_update(*, specimen: Specimen, user, data: dict, address=None) -> Specimen:
    """Correct the given fields of an unsigned specimen; no audit row when nothing changed."""
    require(user, specimen.lab_id, Capability.REGISTER)
    with transaction.atomic():
        specimen = lock_specimen(specimen.pk)
        if specimen.is_signed:
            raise SpecimenLocked(specimen)
        old, new = {}, {}
        for name in SPECIMEN_FIELDS:
            if name not in data:
                continue
            value = data[name].strip() if isinstance(data[name], str) else data[name]
            if getattr(specimen, name) != value:
                old[name], new[name] = getattr(specimen, name), value
                setattr(specimen, name, value)
        if not new:
            return specimen
        full_clean(specimen)
        with atomic_unique(specimen):  # a savepoint: the lock's transaction goes on
            specimen.save(update_fields=[*new, "updated_at"])
        audit_event_create(
            event_type=EventType.SPECIMEN_UPDATED,
            acting_user=user,
            address=address,
            specimen=specimen,
            old=_jsonable(old),
            new=_jsonable(new),
        )
    return specimen


def specimen_transition(
    *,
    specimen: Specimen,
    to: str,
    event_type=EventType.SPECIMEN_STATUS_CHANGED,
    user=None,
    address=None,
    new: dict | None = None,
) -> Specimen:
    """Move a locked ``specimen`` to ``to``: check, save, audit."""
    old = specimen.status
    if to not in ALLOWED[old]:
        raise IllegalSpecimenTransition(f"specimen {specimen.pk}: {old} -> {to} is not allowed")
    specimen.status = to
    specimen.save(update_fields=["status", "updated_at"])
    audit_event_create(
        event_type=event_type,
        acting_user=user,
        address=address,
        specimen=specimen,
        old={"status": old},
        new={"status": to, **(new or {})},
    )
    return specimen


def lock_specimen(pk: int) -> Specimen:
    """The specimen row, locked for this transaction: everyone who locks it runs one after the
    other. ``FOR NO KEY UPDATE`` (PostgreSQL): rows that merely refer to the specimen (a
    worker's audit event, checked at its commit) are not held up, so a verdict waiting on an
    image the worker holds cannot deadlock with it."""
    return Specimen.objects.select_for_update(no_key=True).get(pk=pk)


def _values(specimen: Specimen) -> dict:
    return _jsonable({name: getattr(specimen, name) for name in SPECIMEN_FIELDS})


def _jsonable(values: dict) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}
