"""Smear images, the predictions made on each, and each member's vote."""

from django.conf import settings
from django.db import models

from .patients import Patient, Specimen

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
        DONE = "done", "Classified"
        FAILED = "failed", "Failed"

    class FailureKind(models.TextChoices):
        NONE = "", "None"
        IMAGE = "image", "The image cannot be read"
        MODEL = "model", "The model is unavailable"
        ATTEMPTS = "attempts", "Too many attempts"
        UNEXPECTED = "unexpected", "Unexpected error"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="images")
    specimen = models.ForeignKey(
        Specimen,
        on_delete=models.CASCADE,
        related_name="images",
        help_text="The case the image belongs to; its patient is the specimen's patient.",
    )
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
        # Never the original file name: in public data sets it often carries the true class.
        return f"Image #{self.pk} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def latest_prediction(self) -> "Prediction | None":
        return self.predictions.order_by("-created_at", "-id").first()

    @property
    def current_verdict(self):
        """The latest verdict (earlier ones stay in ``verdicts``), or ``None``. Uses the
        selectors' prefetch (``verdict_history``) when there is one."""
        history = getattr(self, "verdict_history", None)
        if history is not None:
            return history[0] if history else None
        return self.verdicts.select_related("reviewer").order_by("-id").first()

    @property
    def current_flags(self) -> list:
        """The flags of the latest result (prefetched as ``active_flags`` by the selectors)."""
        flags = getattr(self, "active_flags", None)
        if flags is None:
            flags = list(self.flags.filter(active=True))
        return flags


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
    out_of_domain = models.BooleanField(
        "outside the model's domain",
        default=False,
        db_index=True,
        help_text="The version's out-of-domain detector found the image unlike its training "
        "data: the label is withheld (the members' votes are kept, marked unreliable).",
    )
    ood_score = models.FloatField(
        "out-of-domain score",
        null=True,
        blank=True,
        help_text="1 is the detector's threshold; above it the image is outside the domain. "
        "Empty when the version has no detector.",
    )
    ood_parts = models.JSONField(
        default=dict,
        blank=True,
        help_text="The detector's two scores, each divided by its threshold: the members' "
        "features and the image's colour and texture statistics.",
    )

    class Saliency(models.TextChoices):
        PENDING = "pending", "Being computed"
        DONE = "done", "Computed"
        FAILED = "failed", "Could not be computed"
        UNAVAILABLE = "unavailable", "Not available"

    saliency_status = models.CharField(
        "Grad-CAM maps",
        max_length=16,
        choices=Saliency.choices,
        default=Saliency.PENDING,
        help_text="The follow-up task that computes where the model looked.",
    )
    saliency_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "model_version"], name="one_prediction_per_image_and_version"
            )
        ]

    def __str__(self) -> str:
        if self.out_of_domain:
            return "Outside the model's domain: not classified"
        return f"{self.label} ({self.votes}/{self.member_count}, {self.agreement})"

    @property
    def shown_label(self) -> str | None:
        """The label a person may read as the model's answer: None when it is withheld
        because the image is outside the model's domain."""
        return None if self.out_of_domain else self.label

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
