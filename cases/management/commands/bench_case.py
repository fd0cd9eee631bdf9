"""``manage.py bench_case``: a case of N images and single images beside it, through the REST API
of a throwaway portal (web and worker) on the current settings; one line or one JSON object."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from inference.management.base import VersionCommand


class Command(VersionCommand):
    help = (
        "Start a throwaway portal (gunicorn and a Celery worker, its own database, media and "
        "queue) on the current settings with a copy of the active version (or --version N), "
        "upload a case of --images images in one request while a second client uploads "
        "--singles single images one by one, and report how long until every result is saved."
    )

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=50, help="images in the case")
        parser.add_argument("--singles", type=int, default=10, help="single uploads beside it")
        parser.add_argument("--single-interval", type=float, default=1.0, help="seconds apart")
        parser.add_argument("--data-dir", type=Path, help="take the images from this folder")
        parser.add_argument("--version", type=int, help="model version (default: the active)")
        parser.add_argument("--timeout", type=float, default=600.0)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts):
        from cases.bench import case_load
        from cases.bench.stack import Stack, StackError

        if opts["images"] < 1 or opts["singles"] < 0:
            raise CommandError("--images must be at least 1 and --singles at least 0")
        version = _version(opts["version"])
        try:
            case = case_load.images_from(opts["data_dir"], opts["images"])
            singles = case_load.images_from(opts["data_dir"], opts["images"] + opts["singles"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        warm_up = case_load.images_from(None, 1, seed=10_000)
        say = self.stderr.write if opts["json"] else self.stdout.write
        with Stack() as stack:
            say(f"Starting a throwaway portal on {stack.vendor} with the {stack.broker} broker...")
            try:
                stack.start(version, patients=2)
            except StackError as exc:
                raise CommandError(str(exc)) from None
            say("Warming up (the worker loads the model on its first image)...")
            case_load.run(
                stack, case_load.Load(case=warm_up, singles=[], timeout_s=opts["timeout"])
            )
            say(f"Uploading a case of {len(case)} images and {opts['singles']} single images...")
            figures = case_load.run(
                stack,
                case_load.Load(
                    case=case,
                    singles=singles[len(case) :],
                    single_interval_s=opts["single_interval"],
                    timeout_s=opts["timeout"],
                ),
            )
            context = {
                "database": stack.vendor,
                "broker": stack.broker,
                "version": str(version),
                "batch_max": _batch_max(),
            }
        if opts["json"]:
            self.stdout.write(json.dumps(figures.as_json(**context), indent=2))
            return
        self.stdout.write(_text(figures, context))


def _version(number):
    from inference.artifacts import get_active_version
    from inference.models import ModelVersion

    if number is None:
        row = get_active_version()
        if row is None:
            raise CommandError("no active version: pass --version N")
        return row
    try:
        return ModelVersion.objects.get(version=number)
    except ModelVersion.DoesNotExist:
        raise CommandError(f"no model version {number}") from None


def _batch_max() -> int:
    from django.conf import settings

    return settings.LP_CLASSIFY_BATCH_MAX


def _text(figures, context) -> str:
    def s(value):
        return "n/a" if value is None else f"{value:.2f} s"

    return "\n".join(
        [
            f"{context['version']} on {context['database']} + {context['broker']}, "
            f"batches of up to {context['batch_max']}",
            f"Case of {figures.case_images} images: upload request {s(figures.case_upload_seconds)}"
            f", last result {s(figures.case_seconds)} after the request started",
            f"{figures.singles} single images beside it: p50 {s(figures.single_p50_s)}, "
            f"p95 {s(figures.single_p95_s)}, max {s(figures.single_max_s)}",
            f"Unfinished: {figures.unfinished}; failed: {figures.failed}",
        ]
    )
