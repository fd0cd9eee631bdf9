"""``manage.py evaluate_model``: score a registered version on a labelled folder."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from inference.management.base import VersionCommand


class Command(VersionCommand):
    help = (
        "Evaluate a registered model version (default: the active one) on a folder of class "
        "sub-folders through the serving engine; prints the metrics (JSON with --json)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, help="folder of class sub-folders")
        parser.add_argument(
            "--run-dir", type=Path, help="instead of --data-dir: a split of a run folder"
        )
        parser.add_argument("--split", default="test", choices=["train", "val", "test"])
        parser.add_argument(
            "--segmented", action="store_true", help="with --run-dir: the Segmented twins"
        )
        parser.add_argument("--version", type=int, dest="model_version", help="version number")
        parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
        parser.add_argument("--out-dir", type=Path, help="also write plots, metrics.json, report")
        parser.add_argument(
            "--foreign-run",
            action="store_true",
            help="with --run-dir: score a version that another run trained (its split is then "
            "not held out from the version; the figures say so)",
        )
        parser.add_argument(
            "--tta",
            choices=["none", "flips"],
            help="evaluate with these test-time views instead of the version's own (analysis "
            "only: the worker always serves the version's config)",
        )

    def handle(self, *args, **opts):
        from inference.artifacts import get_active_version
        from inference.models import ModelVersion
        from ml_training.evaluate import _json_default, report_markdown, save_metrics
        from ml_training.scoring import evaluate_registered

        if opts["model_version"] is not None:
            version = ModelVersion.objects.filter(version=opts["model_version"]).first()
            if version is None:
                raise CommandError(f"no model version {opts['model_version']}")
        else:
            version = get_active_version()
            if version is None:
                raise CommandError("no active model version; pass --version N")
        if not opts["data_dir"] and not opts["run_dir"]:
            raise CommandError("give --data-dir DIR or --run-dir RUN_DIR")
        try:
            metrics = evaluate_registered(
                version,
                opts["data_dir"],
                run_dir=opts["run_dir"],
                split=opts["split"],
                segmented=opts["segmented"],
                n_boot=opts["bootstrap"],
                out_dir=opts["out_dir"],
                progress=not opts["json"] and opts["verbosity"] >= 1,
                tta=opts["tta"],
                foreign_run=opts["foreign_run"],
            )
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        where = opts["data_dir"] or f"{opts['run_dir']} ({opts['split']} split)"
        if opts["tta"] is not None:
            where += f", evaluated with test-time views {opts['tta']!r}"
        if opts["out_dir"]:
            save_metrics(metrics, opts["out_dir"], title=f"{version} on {where}")
        if opts["json"]:
            self.stdout.write(json.dumps(metrics, indent=1, default=_json_default))
        else:
            self.stdout.write(report_markdown(metrics, title=f"{version} on {where}"))
