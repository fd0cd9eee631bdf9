"""Human review: flags that route an image to a person, the verdicts people record, and the
sign-off (with amendments) that closes a specimen. Verdicts and sign-offs are append-only."""

from django.conf import settings
from django.db import models

from .base import AppendOnlyModel
from .images import Prediction, SmearImage
from .labs import Membership
from .patients import Specimen


class ImageFlag(models.Model):
    """One reason an image needs a human look (``cases.flags`` defines the reasons).

    Flags are computed when a prediction is saved or a classification fails. A new prediction or
    failure supersedes the image's earlier flags (``active`` becomes false); none is deleted.
    ``reason`` is a code from the flag registry, deliberately without ``choices``: a new reason
    needs no migration.
    """

    image = models.ForeignKey(SmearImage, on_delete=models.CASCADE, related_name="flags")
    prediction = models.ForeignKey(
        Prediction, null=True, blank=True, on_delete=models.CASCADE, related_name="flags"
    )
    reason = models.CharField(max_length=32, db_index=True)
    detail = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["image", "active"])]

    def __str__(self) -> str:
        return f"{self.reason} on image #{self.image_id}"


class Verdict(AppendOnlyModel):
    """A person's judgement of one image. Changing one adds a new row; the latest counts."""

    class Kind(models.TextChoices):
        CONFIRM = "confirm", "Confirmed the model's label"
        RECLASSIFY = "reclassify", "Reclassified"
        NOT_ASSESSABLE = "not_assessable", "Not assessable"
        EXCLUDED = "excluded", "Excluded from the case"

    class NotAssessableReason(models.TextChoices):
        POOR_QUALITY = "poor_quality", "Poor image quality"
        WRONG_SPECIMEN = "wrong_specimen", "Wrong specimen"
        NO_RELEVANT_CELLS = "no_relevant_cells", "No relevant cells"

    image = models.ForeignKey(SmearImage, on_delete=models.PROTECT, related_name="verdicts")
    prediction = models.ForeignKey(
        Prediction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="verdicts",
        help_text="The prediction judged; empty when an image without one was excluded.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.CharField(
        max_length=32, blank=True, help_text="The verified class; empty when none was chosen."
    )
    reason = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verdicts"
    )
    reviewer_role = models.CharField(max_length=16, choices=Membership.Role.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["image", "-id"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label}".strip()

    @property
    def reason_text(self) -> str:
        """The reason as a person reads it (a not-assessable code becomes its label)."""
        if self.kind == self.Kind.NOT_ASSESSABLE and self.reason in self.NotAssessableReason.values:
            return self.NotAssessableReason(self.reason).label
        return self.reason

    @property
    def is_assessable(self) -> bool:
        return self.kind in (self.Kind.CONFIRM, self.Kind.RECLASSIFY)


class SignOff(AppendOnlyModel):
    """One signed version of a specimen's interpretation. Version 1 is the sign-off; each
    amendment adds the next version with its reason. The latest version is the report."""

    class Interpretation(models.TextChoices):
        BENIGN = "Benign", "Benign (hematogones)"
        EARLY = "Early", "Early pre-B ALL"
        PRE = "Pre", "Pre-B ALL"
        PRO = "Pro", "Pro-B ALL"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    specimen = models.ForeignKey(Specimen, on_delete=models.PROTECT, related_name="sign_offs")
    version = models.PositiveSmallIntegerField()
    interpretation = models.CharField(max_length=16, choices=Interpretation.choices)
    comment = models.TextField(blank=True)
    amendment_reason = models.TextField(blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sign_offs"
    )
    signed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["specimen", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["specimen", "version"], name="one_sign_off_per_specimen_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.specimen} v{self.version}: {self.interpretation}"

    @property
    def is_amendment(self) -> bool:
        return self.version > 1
