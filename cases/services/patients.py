"""Patients: register and correct, each change audited with its old and new values."""

from ..models import AuditEvent, Patient
from ..roles import Capability, require
from .audit import audit_event_create
from .cleaning import atomic_unique, full_clean

PATIENT_FIELDS = ("record_number", "display_label", "sex", "birth_year")


def patient_create(
    *, lab, created_by, record_number, display_label, sex="", birth_year=None, address=None
) -> Patient:
    """Register a patient in ``lab``. ``created_by`` must be a technologist or hematologist
    there (``roles.RoleRequired`` otherwise). A record number is unique within the lab."""
    require(created_by, lab, Capability.REGISTER)
    patient = Patient(
        lab=lab,
        created_by=created_by,
        record_number=(record_number or "").strip(),
        display_label=(display_label or "").strip(),
        sex=sex or "",
        birth_year=birth_year,
    )
    full_clean(patient)
    with atomic_unique(patient):
        patient.save()
        audit_event_create(
            event_type=AuditEvent.EventType.PATIENT_CREATED,
            acting_user=created_by,
            address=address,
            patient=patient,
            new=_patient_values(patient),
        )
    return patient


def patient_update(*, patient: Patient, user, data: dict, address=None) -> Patient:
    """Change the given fields; returns early (no audit row) when nothing changed."""
    require(user, patient.lab_id, Capability.REGISTER)
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
    full_clean(patient)
    with atomic_unique(patient):
        patient.save(update_fields=[*new, "updated_at"])
        audit_event_create(
            event_type=AuditEvent.EventType.PATIENT_UPDATED,
            acting_user=user,
            address=address,
            patient=patient,
            old=old,
            new=new,
        )
    return patient


def _patient_values(patient: Patient) -> dict:
    return {name: getattr(patient, name) for name in PATIENT_FIELDS}
