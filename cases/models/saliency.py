"""Where the model looked: Grad-CAM overlays stored with a prediction (``inference.gradcam``)."""

import uuid

from django.db import models

from .images import Prediction


def saliency_upload_to(instance, filename: str) -> str:
    return f"saliency/{instance.prediction_id}/{uuid.uuid4().hex}.png"


class SaliencyMap(models.Model):
    """One overlay PNG: the image with the Grad-CAM heat map of one member, or (``member``
    empty) the ensemble's average, for the class the ensemble chose."""

    prediction = models.ForeignKey(
        Prediction, on_delete=models.CASCADE, related_name="saliency_maps"
    )
    member = models.CharField(max_length=64, blank=True, help_text="Empty: the ensemble.")
    class_name = models.CharField(max_length=32)
    file = models.FileField(upload_to=saliency_upload_to, max_length=255)
    peak_x = models.FloatField(help_text="The heat map's maximum, as a fraction of the width.")
    peak_y = models.FloatField(help_text="The heat map's maximum, as a fraction of the height.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prediction", "member"]
        constraints = [
            models.UniqueConstraint(
                fields=["prediction", "member"], name="one_saliency_map_per_member"
            )
        ]

    def __str__(self) -> str:
        return f"Grad-CAM {self.member or 'ensemble'} of prediction {self.prediction_id}"

    @property
    def is_ensemble(self) -> bool:
        return not self.member
