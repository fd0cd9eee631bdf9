"""``manage.py build_serving_model --version N``: give a version registered without one its
serving model (``inference.serving_model``), so workers start from one fused file."""

from django.core.management.base import CommandError

from inference.exceptions import ArtifactIntegrityError
from inference.management.base import VersionCommand
from inference.models import ModelVersion


class Command(VersionCommand):
    help = (
        "Fuse a registered version's members (BatchNormalization folded) into its serving "
        "model and store it with the version: workers then load one file instead of every "
        "member. Versions registered by retrain, register_model or the demo have one already. "
        "Workers that loaded the version before keep their models until they restart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", type=int, required=True, help="version number")
        parser.add_argument(
            "--replace", action="store_true", help="rebuild it when the version has one"
        )

    def handle(self, *args, version, replace, **options):
        try:
            row = ModelVersion.objects.get(version=version)
        except ModelVersion.DoesNotExist:
            raise CommandError(f"no model version {version}") from None
        from inference import serving_model

        self.stderr.write(f"Building the serving model of {row} from {row.member_names}...")
        try:
            row = serving_model.add_to_version(row, replace=replace)
        except (ValueError, ArtifactIntegrityError) as exc:
            raise CommandError(str(exc)) from exc
        serving = row.serving
        self.stdout.write(
            f"{row}: serving model {serving['artifact']} ({serving['bytes'] / 1e6:.0f} MB, "
            f"sha256 {serving['sha256'][:12]}…, {serving['folded']} BatchNormalization layers "
            "folded)"
        )
