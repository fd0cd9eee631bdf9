"""``manage.py cv_report``: summarise the run folders of a cross-validation."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Summarise a stratified group k-fold cross-validation from its run folders (one per "
        "fold, made by retrain --cv-folds K --cv-fold I): per-fold macro-F1 and mean ± SD."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, **opts):
        from ml_training.crossval import report_markdown, summarise

        try:
            summary = summarise(opts["run_dirs"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(summary, indent=1))
        else:
            self.stdout.write(report_markdown(summary))
