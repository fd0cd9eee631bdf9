"""``manage.py make_non_smears OUT_DIR``: images that are not blood smears, for the OOD flag."""

from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Write procedurally generated images that are not blood smears (empty fields, "
        "documents, screenshots, photographs, colour charts, noise) for classify_folder."
    )

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--per-kind", type=int, default=3)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        from ml_training.non_smears import write_non_smears

        n = write_non_smears(opts["out_dir"], per_kind=opts["per_kind"], seed=opts["seed"])
        self.stdout.write(self.style.SUCCESS(f"wrote {n} images to {opts['out_dir']}"))
