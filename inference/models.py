"""The model registry: every ensemble the portal can serve, with what is needed to reproduce it."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    """One registered ensemble. Exactly one version is ``active`` at a time (partial unique index).

    ``members`` is a list of dicts, one per ensemble member::

        {"name": "ResNet50", "architecture": "ResNet50", "input_size": 128,
         "artifact": "models/v3/ResNet50.keras", "sha256": "..."}

    ``artifact`` is a name in the default storage (media), so weights live where media lives
    (local disk or S3), never in git. ``preprocessing`` is the timm-style dict that drives
    ``inference.preprocessing`` in training and in serving alike. ``review_threshold`` is the
    top mean probability below which a result is flagged for human review.
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    name = models.CharField(max_length=100, default="all-ensemble")
    version = models.PositiveIntegerField(unique=True, editable=False)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.CANDIDATE, db_index=True
    )
    is_demo = models.BooleanField(
        default=False,
        help_text="Untrained or synthetic-data ensemble for demonstrations; never a real model.",
    )
    members = models.JSONField(default=list)
    preprocessing = models.JSONField(default=dict)
    class_names = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)
    review_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=(
            "Results whose top mean ensemble probability is below this go to human review. "
            "Chosen on the validation split (figures in metrics['review_threshold']); empty "
            "for versions registered without one."
        ),
    )
    ood = models.JSONField(
        "out-of-domain detector",
        default=dict,
        blank=True,
        help_text=(
            "The detector that flags images unlike the training data (inference.ood): its "
            "stored file (artifact, sha256, bytes), method, thresholds and validation figures. "
            "Empty for versions registered without one: their results are never flagged."
        ),
    )
    calibration = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "The calibration of the displayed ensemble probability: {'temperature': T, ...} "
            "with its validation figures (softmax(log(mean) / T), fitted on the validation "
            "split with the served test-time views). Empty: T = 1."
        ),
    )
    serving = models.JSONField(
        "serving model",
        default=dict,
        blank=True,
        help_text=(
            "The members fused into one file with their BatchNormalization folded "
            "(inference.serving_model), which workers load instead of the members: its stored "
            "file (artifact, sha256, bytes), the member files it was built from and the "
            "preprocessing it bakes in. Empty: workers load and fuse the members themselves."
        ),
    )
    data_fingerprint = models.CharField(max_length=64, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        demo = " DEMO" if self.is_demo else ""
        return f"{self.name} v{self.version}{demo} ({self.status})"

    @property
    def label(self) -> str:
        """How the version is shown on result pages: ``v3`` or ``v3 DEMO``."""
        return f"v{self.version}" + (" DEMO" if self.is_demo else "")

    @property
    def temperature(self) -> float:
        return float((self.calibration or {}).get("temperature") or 1.0)

    @property
    def has_ood_detector(self) -> bool:
        return bool((self.ood or {}).get("artifact"))

    @property
    def member_names(self) -> list[str]:
        return [m["name"] for m in self.members]

    def needs_review(self, probabilities: dict[str, float]) -> bool:
        """Whether a result of this version goes to human review: its top mean probability
        (``probabilities``: class -> mean member probability) is below the review threshold.
        False for a version without a threshold."""
        if self.review_threshold is None or not probabilities:
            return False
        return max(probabilities.values()) < self.review_threshold

    def validated_figures(self) -> dict:
        """The ensemble's figures on its test split, as a report quotes them: accuracy and
        macro-F1 with their 95% intervals, the number of test images, the review threshold.
        Missing values are ``None`` (a version registered without metrics)."""
        ensemble = (self.metrics or {}).get("ensemble")
        ensemble = ensemble if isinstance(ensemble, dict) else {}
        ci = ensemble.get("ci95") if isinstance(ensemble.get("ci95"), dict) else {}

        def interval(key):
            value = ci.get(key)
            return tuple(value) if isinstance(value, (list, tuple)) and len(value) == 2 else None

        return {
            "accuracy": ensemble.get("accuracy"),
            "accuracy_ci": interval("accuracy"),
            "macro_f1": ensemble.get("macro_f1"),
            "macro_f1_ci": interval("macro_f1"),
            "test_images": ensemble.get("images"),
            "review_threshold": self.review_threshold,
        }
