"""Laboratories and who works in them, with which role."""

from django.conf import settings
from django.db import models


class Lab(models.Model):
    """A laboratory or department. Its members share its patients, specimens and queue."""

    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """One user's role in one lab. What each role may do is in ``cases.roles``."""

    class Role(models.TextChoices):
        TECHNOLOGIST = "technologist", "Technologist"
        HEMATOLOGIST = "hematologist", "Hematologist"
        MANAGER = "manager", "Lab manager"

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["lab__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["lab", "user"], name="one_role_per_lab")]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} in {self.lab}"
