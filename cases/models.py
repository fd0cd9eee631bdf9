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


def smear_upload_to(instance: "SmearImage", filename: str) -> str:
    """Content-hash name: ``smears/ab/abcdef….jpg``. The original name is kept in a field."""
    ext = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "BMP": "bmp"}.get(instance.format, "img")
    return f"smears/{instance.sha256[:2]}/{instance.sha256}.{ext}"


class SmearImage(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=smear_upload_to, max_length=255)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    size_bytes = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploaded_images"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "sha256"], name="one_copy_of_an_image_per_patient"
            )
        ]

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


class AuditEvent(models.Model):
    """Who did what, when, with old and new values (after Zulip's RealmAuditLog)."""

    class EventType(models.IntegerChoices):
        PATIENT_CREATED = 101, "Patient created"
        PATIENT_UPDATED = 102, "Patient updated"
        IMAGE_UPLOADED = 201, "Image uploaded"
        IMAGE_CLASSIFIED = 202, "Image classified"
        IMAGE_FAILED = 203, "Image classification failed"
        IMAGE_REQUEUED = 204, "Image queued again"

    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event_type = models.PositiveSmallIntegerField(choices=EventType.choices)
    event_time = models.DateTimeField(auto_now_add=True, db_index=True)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    image = models.ForeignKey(
        SmearImage, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    extra_data = models.JSONField(default=dict, blank=True, help_text='{"old": …, "new": …}')

    class Meta:
        ordering = ["-event_time", "-id"]
        indexes = [models.Index(fields=["patient", "event_type", "event_time"])]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} at {self.event_time:%Y-%m-%d %H:%M}"
