"""Export a lab's verified images as a class-folder tree that ``retrain --data-dir`` reads."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cases.models import Lab
from cases.services.exports import ExportRefused, reviewed_export


class Command(BaseCommand):
    help = (
        "Write every verified, assessable image of a lab into DIR/<verified label>/<sha256>.png "
        "with DIR/reviewed-manifest.csv."
    )

    def add_arguments(self, parser):
        parser.add_argument("--lab", required=True, help="The lab's name or id.")
        parser.add_argument("--to", required=True, type=Path, help="An empty (or new) folder.")
        parser.add_argument(
            "--signed-only", action="store_true", help="Only images of signed-out specimens."
        )
        parser.add_argument(
            "--replace", action="store_true", help="Replace an earlier export in the folder."
        )

    def handle(self, *args, lab, to, signed_only, replace, **options):
        found = Lab.objects.filter(name=lab).first()
        if found is None and lab.isdigit():
            found = Lab.objects.filter(pk=int(lab)).first()
        if found is None:
            names = ", ".join(Lab.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No lab {lab!r}. Labs: {names}.")
        try:
            report = reviewed_export(lab=found, to=to, signed_only=signed_only, replace=replace)
        except ExportRefused as exc:
            raise CommandError(str(exc)) from exc
        per_class = ", ".join(f"{k} {v}" for k, v in sorted(report.per_class.items())) or "none"
        self.stdout.write(
            f"Exported {report.images} verified images of {found.name} to {report.folder} "
            f"({per_class}); manifest: {report.folder / 'reviewed-manifest.csv'}."
        )
        if report.conflicts:
            self.stderr.write(
                f"Left out {len(report.conflicts)} image(s) whose copies (the same pixels "
                "uploaded for more than one patient) were verified as different classes; "
                "settle their verdicts to include them: " + ", ".join(report.conflicts)
            )
