"""``manage.py register_model PATH``: register an ensemble bundle trained elsewhere."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Validate an ensemble bundle (a folder with bundle.json and member .keras files, such as "
        "a retrain run folder: files, sha256, loadable, input shapes, classes) and register it."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="bundle folder or its bundle.json")
        parser.add_argument("--activate", action="store_true")
        parser.add_argument("--notes", default="")

    def handle(self, *args, **opts):
        from ml_training.bundles import register_bundle

        try:
            version = register_bundle(opts["path"], activate=opts["activate"], notes=opts["notes"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"invalid bundle: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"registered {version}"))
