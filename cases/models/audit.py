"""The audit log (Zulip's RealmAuditLog shape): append-only."""

from django.conf import settings
from django.db import models

from .base import AppendOnlyModel
from .images import SmearImage
from .labs import Lab
from .patients import Patient, Specimen


class AuditEvent(AppendOnlyModel):
    """Who did what (or read what), when, from where, with old and new values.

    Shaped after Zulip's RealmAuditLog. Append-only: ``save`` refuses to change a stored row,
    ``delete`` and queryset ``update``/``delete`` refuse, and the objects it points at cannot be
    deleted while it points at them (``PROTECT``).
    """

    class EventType(models.IntegerChoices):
        LOGIN_SUCCEEDED = 1, "Signed in"
        LOGIN_FAILED = 2, "Sign-in failed"
        LOGOUT = 3, "Signed out"
        TOKEN_ISSUED = 4, "API token issued"
        TOKEN_REVOKED = 5, "API token revoked"
        MEMBERSHIP_ADDED = 11, "Lab member added"
        MEMBERSHIP_CHANGED = 12, "Lab member's role changed"
        MEMBERSHIP_REMOVED = 13, "Lab member removed"
        PATIENT_CREATED = 101, "Patient created"
        PATIENT_UPDATED = 102, "Patient updated"
        PATIENT_VIEWED = 111, "Patient viewed"
        PATIENT_LIST_VIEWED = 112, "Patient list viewed"
        IMAGE_UPLOADED = 201, "Image uploaded"
        IMAGE_CLASSIFIED = 202, "Image classified"
        IMAGE_FAILED = 203, "Image classification failed"
        IMAGE_REQUEUED = 204, "Image queued again"
        IMAGE_PROCESSING = 205, "Image classification started"
        IMAGE_RETRYING = 206, "Image classification delayed; retrying"
        IMAGE_RECOVERED = 207, "Image recovered by the sweep"
        IMAGE_VIEWED = 211, "Image page viewed"
        IMAGE_FILE_READ = 212, "Image file read"
        IMAGE_LIST_VIEWED = 213, "Image list viewed"
        PREDICTION_VIEWED = 301, "Prediction viewed"
        PREDICTION_LIST_VIEWED = 302, "Prediction list viewed"
        SPECIMEN_CREATED = 401, "Specimen registered"
        SPECIMEN_UPDATED = 402, "Specimen updated"
        SPECIMEN_STATUS_CHANGED = 403, "Specimen status changed"
        SPECIMEN_SIGNED = 404, "Specimen signed out"
        SPECIMEN_AMENDED = 405, "Signed specimen amended"
        SPECIMEN_VIEWED = 411, "Specimen viewed"
        SPECIMEN_LIST_VIEWED = 412, "Specimen list viewed"
        VERDICT_RECORDED = 501, "Verdict recorded"
        REVIEW_QUEUE_VIEWED = 511, "Review queue viewed"
        QA_VIEWED = 512, "Lab QA page viewed"
        REVIEWED_EXPORTED = 521, "Reviewed images exported"
        REPORT_RENDERED = 531, "Case report rendered and stored"
        REPORT_DOWNLOADED = 532, "Signed case report downloaded"
        REPORT_VIEWED = 533, "Case report viewed (print view or draft)"
        FHIR_EXPORTED = 534, "Case exported as FHIR"
        CSV_EXPORTED = 535, "Image table exported as CSV"
        ACTION_REFUSED = 601, "Action refused"

    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    event_type = models.PositiveSmallIntegerField(choices=EventType.choices)
    event_time = models.DateTimeField(auto_now_add=True, db_index=True)
    ip_address = models.GenericIPAddressField(
        null=True, blank=True, help_text="Address of the request; empty for the worker's events."
    )
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    image = models.ForeignKey(
        SmearImage, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    specimen = models.ForeignKey(
        Specimen, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    lab = models.ForeignKey(
        Lab, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    extra_data = models.JSONField(default=dict, blank=True, help_text='{"old": …, "new": …}')

    class Meta:
        ordering = ["-event_time", "-id"]
        indexes = [
            models.Index(fields=["patient", "event_type", "event_time"]),
            models.Index(fields=["acting_user", "event_time"]),
            models.Index(fields=["lab", "event_type", "event_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} at {self.event_time:%Y-%m-%d %H:%M}"
