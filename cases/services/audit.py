"""The audit log: every write, every read of patient data, every sign-in (Zulip's shape).

Writes are recorded by the service that makes them, inside its transaction. Reads are recorded by
``audit_read``, called by the views and the API after the object was found in the user's scope.
"""

from leukemia_portal.middleware import client_address

from ..models import AuditEvent

EventType = AuditEvent.EventType


def audit_event_create(
    *,
    event_type,
    acting_user=None,
    address=None,
    patient=None,
    image=None,
    specimen=None,
    lab=None,
    old=None,
    new=None,
    extra=None,
) -> AuditEvent:
    """Append one event. ``patient`` defaults to the image's or the specimen's patient, ``lab``
    to the patient's or the specimen's lab, ``specimen`` to the image's specimen."""
    data = dict(extra or {})
    if old is not None:
        data["old"] = old
    if new is not None:
        data["new"] = new
    patient_id = patient.pk if patient is not None else getattr(image, "patient_id", None)
    patient_id = patient_id or getattr(specimen, "patient_id", None)
    specimen_id = specimen.pk if specimen is not None else getattr(image, "specimen_id", None)
    lab_id = lab.pk if lab is not None else getattr(specimen, "lab_id", None)
    lab_id = lab_id or getattr(patient, "lab_id", None)
    if lab_id is None and image is not None:
        lab_id = image.patient.lab_id
    return AuditEvent.objects.create(
        event_type=event_type,
        acting_user=acting_user if getattr(acting_user, "is_authenticated", False) else None,
        ip_address=address or None,
        patient_id=patient_id,
        image=image,
        specimen_id=specimen_id,
        lab_id=lab_id,
        extra_data=data,
    )


def audit_read(
    *, request, event_type, patient=None, image=None, specimen=None, lab=None, extra=None
) -> AuditEvent:
    """Record that ``request.user`` read patient data (a page, a file, an API answer)."""
    return audit_event_create(
        event_type=event_type,
        acting_user=request.user,
        address=request_address(request),
        patient=patient,
        image=image,
        specimen=specimen,
        lab=lab,
        extra={"path": request.path[:200], **(extra or {})},
    )


def request_address(request) -> str | None:
    """The client's address (``leukemia_portal.middleware.client_address``)."""
    return client_address(request)
