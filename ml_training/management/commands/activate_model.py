"""``manage.py activate_model N``: make version N the active one."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Activate model version N (the previously active version is retired)."

    def add_arguments(self, parser):
        parser.add_argument("version", type=int)

    def handle(self, *args, **opts):
        from inference.exceptions import ArtifactIntegrityError
        from inference.models import ModelVersion
        from inference.registry import activate_version

        version = ModelVersion.objects.filter(version=opts["version"]).first()
        if version is None:
            raise CommandError(f"no model version {opts['version']}")
        try:
            version = activate_version(version)
        except ArtifactIntegrityError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"active: {version}"))
