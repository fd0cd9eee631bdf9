"""``manage.py make_synthetic_smears OUT_DIR``: a small SYNTHETIC data set for demos and tests."""

from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Write procedurally generated, clearly SYNTHETIC smear images in class sub-folders."

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--per-class", type=int, default=12)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--size", type=int, default=224)

    def handle(self, *args, **opts):
        from ml_training.synthetic import make_synthetic_dataset

        counts = make_synthetic_dataset(
            opts["out_dir"], per_class=opts["per_class"], seed=opts["seed"], size=opts["size"]
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"wrote {sum(counts.values())} SYNTHETIC images to {opts['out_dir']}"
            )
        )
