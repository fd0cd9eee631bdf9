"""Images stored before uploads were reduced to pixels keep their EXIF, comments and trailing
bytes: re-store each as the pixels-only PNG that an upload makes today, with its thumbnail.

Each image is converted on its own; one that cannot be read, or whose pixels already stand as
another image of the same patient, is left as it was and reported. An old file is deleted only
when no row uses it any more. Reversing keeps the new files (nothing is lost either way).
"""

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import migrations

logger = logging.getLogger(__name__)


def store_pixels_only(apps, schema_editor):
    from cases.validation import STORED_FORMAT, store_as_pixels

    SmearImage = apps.get_model("cases", "SmearImage")
    replaced: set[str] = set()
    for image in SmearImage.objects.filter(original_format="").iterator():
        try:
            with default_storage.open(image.file.name, "rb") as fh:
                pixels = store_as_pixels(fh.read())
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the migration
            logger.warning("image %s kept as it was: %s", image.pk, exc)
            continue
        if (
            SmearImage.objects.filter(patient_id=image.patient_id, sha256=pixels.sha256)
            .exclude(pk=image.pk)
            .exists()
        ):
            logger.warning("image %s kept as it was: its pixels stand as another image", image.pk)
            continue
        old_name = image.file.name
        image.file.name = _save(f"smears/{pixels.sha256[:2]}/{pixels.sha256}.png", pixels.content)
        image.thumbnail.name = _save(
            f"thumbnails/{pixels.sha256[:2]}/{pixels.sha256}-320.jpg", pixels.thumbnail
        )
        image.original_format = image.format
        image.format = STORED_FORMAT
        image.sha256 = pixels.sha256
        image.size_bytes = len(pixels.content)
        image.width, image.height = pixels.width, pixels.height
        image.save()
        if old_name != image.file.name:
            replaced.add(old_name)
    for name in replaced:
        if SmearImage.objects.filter(file=name).exists():
            continue
        try:
            default_storage.delete(name)
        except Exception as exc:  # noqa: BLE001 - an old file left behind loses nothing
            logger.warning("old file %s was not deleted: %s", name, exc)


def _save(name: str, content: bytes) -> str:
    if default_storage.exists(name):
        return name
    return default_storage.save(name, ContentFile(content))


class Migration(migrations.Migration):
    dependencies = [("cases", "0002_lifecycle_audit_and_pixels")]

    operations = [migrations.RunPython(store_pixels_only, migrations.RunPython.noop)]
