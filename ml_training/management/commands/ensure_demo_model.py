"""``manage.py ensure_demo_model``: a DEMO ensemble from synthetic smears, if none is active."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Do nothing when a model version is active. Otherwise generate SYNTHETIC smears, train "
        "the 'smoke' profile on them, and register + activate the result marked DEMO."
    )

    def add_arguments(self, parser):
        parser.add_argument("--per-class", type=int, default=12)
        parser.add_argument("--profile", default="smoke")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        from inference.artifacts import get_active_version
        from ml_training.pipeline import retrain
        from ml_training.synthetic import make_synthetic_dataset

        active = get_active_version()
        if active is not None:
            self.stdout.write(f"{active} is active: nothing to do.")
            return
        runs = Path(settings.VAR_DIR) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        data_dir = Path(tempfile.mkdtemp(prefix="synthetic-smears-", dir=runs))
        make_synthetic_dataset(data_dir, per_class=opts["per_class"], seed=opts["seed"])
        self.stdout.write(f"SYNTHETIC smears in {data_dir}; training the {opts['profile']} profile")
        ctx, version, _ = retrain(
            data_dir=data_dir,
            profile=opts["profile"],
            seed=opts["seed"],
            activate=True,
            is_demo=True,
            progress=opts["verbosity"] >= 2,
        )
        self.stdout.write(
            self.style.WARNING(
                f"Registered and activated {version}: a DEMO trained on SYNTHETIC smears "
                f"(run folder {ctx.run_dir}); its predictions mean nothing. Review threshold "
                f"(chosen on the validation split): {version.review_threshold}."
            )
        )
