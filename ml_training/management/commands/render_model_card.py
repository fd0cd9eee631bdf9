"""``manage.py render_model_card``: write docs/model-card.md from committed summary files."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from inference.management.base import VersionCommand


class Command(VersionCommand):
    help = (
        "Render docs/model-card.md from the released run's summary files in "
        "docs/model-card/run/. With --from-run RUN_DIR, first copy those files out of a "
        "training run folder (paths made relative, nothing of the machine kept)."
    )

    def add_arguments(self, parser):
        docs = Path(settings.BASE_DIR) / "docs"
        parser.add_argument("--summary", type=Path, default=docs / "model-card" / "run")
        parser.add_argument("--out", type=Path, default=docs / "model-card.md")
        parser.add_argument(
            "--from-run", type=Path, metavar="RUN_DIR", help="export this run's summary first"
        )
        parser.add_argument("--version", type=int, dest="model_version")
        parser.add_argument(
            "--verification",
            type=Path,
            help="metrics JSON printed by evaluate_model --json on the version",
        )
        parser.add_argument("--command", dest="train_command", help="the retrain command used")
        parser.add_argument(
            "--cv",
            type=Path,
            nargs="*",
            metavar="FOLD_RUN",
            help="add these cross-validation fold runs (retrain --cv-folds K --cv-fold I) to the "
            "folds committed in docs/model-card/cv/ and summarise them all (no runs: only "
            "summarise the committed folds again)",
        )

        parser.add_argument(
            "--probe",
            action="append",
            default=[],
            metavar="FOLDER=FILE",
            help="record what classify_folder FOLDER --json printed into FILE (counts only; "
            "repeatable), e.g. another laboratory's smears",
        )

        parser.add_argument(
            "--rerun",
            type=Path,
            metavar="FILE",
            help="record what compare_runs RUN RERUN --json printed into FILE: a second run of "
            "the same command, compared with the released one",
        )

    def handle(self, *args, **opts):
        from ml_training import card_files
        from ml_training.model_card import render

        summary, repo = opts["summary"], Path(settings.BASE_DIR)
        try:
            if opts["from_run"]:
                card_files.export_run(
                    opts["from_run"],
                    summary,
                    repo=repo,
                    version=opts["model_version"],
                    command=opts["train_command"],
                    verification=_read_json(opts["verification"]),
                )
            elif opts["model_version"] or opts["verification"] or opts["train_command"]:
                raise CommandError("--version, --verification and --command go with --from-run")
            for probe in opts["probe"]:
                folder, sep, file = probe.partition("=")
                if not sep:
                    raise CommandError(f"--probe {probe}: expected FOLDER=FILE")
                card_files.add_probe(summary, folder, _read_json(Path(file)), repo=repo)
            if opts["rerun"]:
                card_files.add_rerun(summary, _read_json(opts["rerun"]), repo=repo)
            if opts["cv"] is not None:
                card_files.add_cv_folds(summary, opts["cv"], repo=repo)
            out = render(summary, opts["out"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"wrote {out}"))


def _read_json(path: Path | None) -> dict | None:
    return json.loads(path.read_text()) if path else None
