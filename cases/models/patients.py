"""Patients and their specimens (cases). A patient belongs to a lab, never to one user."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .labs import Lab


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "X", "Other"
        UNKNOWN = "", "Not recorded"

    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="patients")
    record_number = models.CharField(
        "institution record number", max_length=64, help_text="Unique in the lab."
    )
    display_label = models.CharField(
        max_length=80, help_text="A pseudonymous label shown in lists, e.g. 'Patient A-17'."
    )
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True, default=Sex.UNKNOWN)
    birth_year = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1900), MaxValueValidator(2100)]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patients"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["lab", "record_number"],
                name="record_number_unique_in_lab",
                violation_error_code="duplicate_record_number",
                violation_error_message="A patient with this record number exists in this lab.",
            )
        ]
        indexes = [models.Index(fields=["lab", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.display_label} ({self.record_number})"


class Specimen(models.Model):
    """One specimen of one patient: the unit a hematologist signs out.

    Its status moves only through ``services.specimens.specimen_transition``: ``open`` (images
    are being added) → ``in_review`` (the first verdict) → ``signed_out`` → ``amended`` (each
    amendment is a new ``SignOff`` version; the earlier ones stay).
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_REVIEW = "in_review", "In review"
        SIGNED_OUT = "signed_out", "Signed out"
        AMENDED = "amended", "Signed out (amended)"

    # The statuses under a signature: nothing about the specimen's images may change.
    SIGNED = (Status.SIGNED_OUT, Status.AMENDED)

    class Type(models.TextChoices):
        PERIPHERAL_BLOOD = "peripheral_blood", "Peripheral blood smear"
        BONE_MARROW = "bone_marrow", "Bone-marrow aspirate smear"

    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="specimens")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="specimens")
    accession_number = models.CharField(max_length=64, help_text="Unique in the lab.")
    collection_date = models.DateField(null=True, blank=True)
    specimen_type = models.CharField(
        max_length=24, choices=Type.choices, default=Type.PERIPHERAL_BLOOD
    )
    clinical_question = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lab", "accession_number"],
                name="accession_number_unique_in_lab",
                violation_error_code="duplicate_accession_number",
                violation_error_message="A specimen with this accession number exists in this lab.",
            )
        ]

    def __str__(self) -> str:
        return f"Specimen {self.accession_number}"

    @property
    def is_signed(self) -> bool:
        return self.status in self.SIGNED
