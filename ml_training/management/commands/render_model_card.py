"""``manage.py render_model_card RUN_DIR``: write docs/model-card.md from a run folder."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Render docs/model-card.md (and docs/model-card/*.png) from a training run folder."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version N (a model version number) replaces Django's --version.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("run_dir", type=Path)
        parser.add_argument(
            "--out", type=Path, default=Path(settings.BASE_DIR) / "docs" / "model-card.md"
        )
        parser.add_argument("--version", type=int, dest="model_version")
        parser.add_argument(
            "--verification",
            type=Path,
            help="metrics JSON printed by evaluate_model --json on the version",
        )
        parser.add_argument("--command", dest="train_command", help="the retrain command used")

    def handle(self, *args, **opts):
        from ml_training.model_card import render

        verification = None
        if opts["verification"]:
            verification = json.loads(opts["verification"].read_text())
        out = render(
            opts["run_dir"],
            opts["out"],
            version=opts["model_version"],
            verification=verification,
            command=opts["train_command"],
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {out}"))
