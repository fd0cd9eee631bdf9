"""The clinical domain: patients, their smear images, and the predictions made on each image."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "X", "Other"
        UNKNOWN = "", "Not recorded"

    record_number = models.CharField(
        "institution record number",
        max_length=64,
        unique=True,
        help_text="Unique in the institution.",
    )
    display_label = models.CharField(
        max_length=80, help_text="A pseudonymous label shown in lists, e.g. 'Patient A-17'."
    )
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True, default=Sex.UNKNOWN)
    birth_year = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1900), MaxValueValidator(2100)]
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patients"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.display_label} ({self.record_number})"


FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "BMP": "bmp"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff", "BMP": "image/bmp"}


def smear_upload_to(instance: "SmearImage", filename: str) -> str:
    """Content-hash name: ``smears/ab/abcdef….png``. The original name is kept in a field."""
    ext = FORMAT_EXTENSIONS.get(instance.format, "img")
    return f"smears/{instance.sha256[:2]}/{instance.sha256}.{ext}"


def thumbnail_upload_to(instance: "SmearImage", filename: str) -> str:
    return f"thumbnails/{instance.sha256[:2]}/{instance.sha256}-320.jpg"


class SmearImage(models.Model):
    """One uploaded smear image. Its status moves only through ``services.lifecycle``."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class FailureKind(models.TextChoices):
        NONE = "", "None"
        IMAGE = "image", "The image cannot be read"
        MODEL = "model", "The model is unavailable"
        ATTEMPTS = "attempts", "Too many attempts"
        UNEXPECTED = "unexpected", "Unexpected error"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=smear_upload_to, max_length=255)
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=255, blank=True)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(
        max_length=64, db_index=True, help_text="SHA-256 of the stored (pixels-only) file."
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10, help_text="Format of the stored file.")
    original_format = models.CharField(
        max_length=10, blank=True, help_text="Format of the file as uploaded."
    )
    size_bytes = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploaded_images"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    error_message = models.TextField(blank=True, help_text="Shown to the clinician.")
    failure_kind = models.CharField(
        max_length=16, choices=FailureKind.choices, blank=True, default=FailureKind.NONE
    )
    failure_detail = models.TextField(
        blank=True, help_text="For the operator: the technical reason of the last failure."
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Classification attempts since the image was last queued by a person."
    )
    task_id = models.CharField(
        max_length=64, blank=True, help_text="The Celery task that owns the current attempt."
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last sent; empty if the send failed."
    )
    processing_started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "sha256"], name="one_copy_of_an_image_per_patient"
            )
        ]
        indexes = [models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.original_name} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def latest_prediction(self) -> "Prediction | None":
        return self.predictions.order_by("-created_at", "-id").first()


class Prediction(models.Model):
    """One classification of one image by one model version. History is never overwritten."""

    class Agreement(models.TextChoices):
        UNANIMOUS = "unanimous", "Unanimous"
        MAJORITY = "majority", "Majority"
        SPLIT = "split", "Split"

    image = models.ForeignKey(SmearImage, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.PROTECT, related_name="predictions"
    )
    label = models.CharField(max_length=32, db_index=True)
    probabilities = models.JSONField(help_text="Mean member probability per class.")
    votes = models.PositiveSmallIntegerField(help_text="Members that voted for the final label.")
    member_count = models.PositiveSmallIntegerField()
    agreement = models.CharField(max_length=16, choices=Agreement.choices, db_index=True)
    inference_ms = models.FloatField(help_text="Engine time for this image, in milliseconds.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "model_version"], name="one_prediction_per_image_and_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.votes}/{self.member_count}, {self.agreement})"

    @property
    def confidence(self) -> float:
        return float(self.probabilities.get(self.label, 0.0))


class MemberVote(models.Model):
    prediction = models.ForeignKey(
        Prediction, on_delete=models.CASCADE, related_name="member_votes"
    )
    member_name = models.CharField(max_length=64)
    label = models.CharField(max_length=32)
    probabilities = models.JSONField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.member_name}: {self.label}"


class AppendOnlyError(Exception):
    """The audit log is append-only: its rows are never changed or deleted."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events are never changed")

    def delete(self):
        raise AppendOnlyError("audit events are never deleted")


class AuditEvent(models.Model):
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
    extra_data = models.JSONField(default=dict, blank=True, help_text='{"old": …, "new": …}')

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-event_time", "-id"]
        indexes = [
            models.Index(fields=["patient", "event_type", "event_time"]),
            models.Index(fields=["acting_user", "event_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} at {self.event_time:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit events are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are never deleted")
