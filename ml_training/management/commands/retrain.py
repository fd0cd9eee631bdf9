"""``manage.py retrain``: manifest, split, train the five members, evaluate, register."""

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Train the voted five-CNN ensemble on a folder of class sub-folders, evaluate it on a "
        "held-out test split through the serving code and register it as a new ModelVersion. "
        "Ctrl-C stops cleanly; --resume RUN_DIR continues with the members not yet trained."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, help="folder of class sub-folders")
        parser.add_argument("--profile", default="cpu", help="paper | cpu | smoke | path.json")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--run-dir", type=Path, help="default: var/runs/<time>-<profile>")
        parser.add_argument("--resume", type=Path, metavar="RUN_DIR")
        parser.add_argument(
            "--weights-dir",
            type=Path,
            default=Path(settings.LP_WEIGHTS_DIR) if settings.LP_WEIGHTS_DIR else None,
            help="folder with Keras' ImageNet no-top weight files (default: LP_WEIGHTS_DIR; "
            "without either, members train from scratch)",
        )
        parser.add_argument(
            "--from-scratch",
            action="store_true",
            help="train from scratch even when LP_WEIGHTS_DIR is set (as the released v1 was)",
        )
        parser.add_argument("--activate", action="store_true", help="activate the new version")
        parser.add_argument("--demo", action="store_true", help="register marked DEMO")
        parser.add_argument("--no-register", action="store_true", help="train and evaluate only")
        parser.add_argument("--notes", default="")
        parser.add_argument(
            "--cv-folds",
            type=int,
            metavar="K",
            help="cross-validation: test on one fold of a stratified group K-fold (with --cv-fold)",
        )
        parser.add_argument(
            "--cv-fold",
            type=int,
            metavar="I",
            help="the fold (1..K) to hold out as the test split; summarise runs with cv_report",
        )

    def handle(self, *args, **opts):
        from ml_training.evaluate import report_markdown
        from ml_training.pipeline import retrain
        from ml_training.train import TrainingInterrupted

        if not opts["resume"] and not opts["data_dir"]:
            raise CommandError("--data-dir is required (or --resume RUN_DIR)")
        try:
            ctx, version, metrics = retrain(
                data_dir=opts["data_dir"],
                profile=opts["profile"],
                seed=opts["seed"],
                run_dir=opts["run_dir"],
                resume=opts["resume"],
                weights_dir=None if opts["from_scratch"] else opts["weights_dir"],
                activate=opts["activate"],
                is_demo=opts["demo"],
                notes=opts["notes"],
                register=not opts["no_register"],
                progress=opts["verbosity"] >= 1,
                cv_folds=opts["cv_folds"],
                cv_fold=opts["cv_fold"],
            )
        except TrainingInterrupted as exc:
            self.stderr.write(self.style.WARNING(str(exc)))
            sys.exit(130)
        except KeyboardInterrupt:
            self.stderr.write(
                self.style.WARNING(
                    "interrupted after training; trained members are kept: continue with "
                    "--resume <run folder> (it evaluates and registers without retraining)"
                )
            )
            sys.exit(130)
        except (FileNotFoundError, FileExistsError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if opts["verbosity"] >= 1:
            self.stdout.write(report_markdown(metrics, title=f"Run {ctx.run_dir.name}"))
        self.stdout.write(f"run folder: {ctx.run_dir}")
        if version is not None:
            self.stdout.write(self.style.SUCCESS(f"registered {version}"))
