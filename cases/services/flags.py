"""Flags: run every registered reason (``cases.flags``) on an image's latest result and store
the ones that apply. Earlier flags of the image are superseded, never deleted."""

from ..flags import evaluate
from ..models import ImageFlag, SmearImage


def flags_refresh(*, image: SmearImage, prediction=None) -> list[ImageFlag]:
    """Call inside the transaction that saves ``prediction`` (or fails the image)."""
    ImageFlag.objects.filter(image=image, active=True).update(active=False)
    return ImageFlag.objects.bulk_create(
        ImageFlag(image=image, prediction=prediction, reason=code, detail=detail)
        for code, detail in evaluate(image, prediction)
    )
