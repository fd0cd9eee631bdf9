"""``manage.py bench_inference``: images/s and latency of the engine against the plain approach,
the compute floor, and a fresh process's start-up (``--json``: one object with every figure)."""

import argparse
import json

from django.core.management.base import CommandError

from inference.management.base import VersionCommand
from inference.models import ModelVersion


class Command(VersionCommand):
    help = (
        "Benchmark the fused, batched engine against calling model.predict per image and per "
        "member, on synthetic images, in the same run. Uses the active version unless --version "
        "or --demo is given (--demo reuses the newest demo version or registers one as a "
        "candidate, leaving the active version alone)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="version number to benchmark")
        which.add_argument("--demo", action="store_true", help="use the untrained demo ensemble")
        parser.add_argument("--images", type=int, default=64)
        parser.add_argument("--batch", type=int, default=16)
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object with every figure"
        )
        parser.add_argument(
            "--no-cold-start",
            action="store_true",
            help="skip timing a fresh process from its start to its first result",
        )
        parser.add_argument(
            "--cold-starts",
            type=int,
            default=3,
            help="fresh processes to time one after the other; the median is reported (3)",
        )
        parser.add_argument("--cold-start-child", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, version, demo, images, batch, **options):
        if images < 1 or batch < 1 or options["cold_starts"] < 1:
            raise CommandError("--images, --batch and --cold-starts must be at least 1")
        row = self._version(version, demo)
        from inference import benchmark

        if options["cold_start_child"]:
            self.stdout.write(benchmark.cold_start_child(row))
            return
        say = self.stderr.write if options["json"] else self.stdout.write
        cold = {}
        if not options["no_cold_start"]:
            # First, while this process holds no model and the machine has not just run minutes
            # of the benchmark below: right after it, the same starts took 2-5 s longer on D.
            say(f"Timing {options['cold_starts']} fresh processes to their first result...")
            cold = benchmark.cold_starts(row.version, options["cold_starts"])
        from inference.engine import EnsembleEngine

        say(f"Loading {row}...")
        engine = EnsembleEngine.from_version(row, batch_size=batch)
        report = benchmark.run_benchmark(engine=engine, images=images, batch=batch)
        del engine
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(**cold), indent=2))
            return
        self.stdout.write(benchmark.format_report(report))
        if cold:
            runs = ", ".join(f"{s:.1f}" for s in cold["cold_start_runs_s"])
            self.stdout.write(
                f"Cold start (fresh process to first result, median of {runs} s): "
                f"{cold['cold_start_s']:.1f} s, of "
                f"which loading and warm-up {cold['load_s']:.1f} s; peak memory "
                f"{cold['rss_mb']:.0f} MB"
            )
            b = cold["breakdown"]
            if b.get("source") == "serving model":
                loaded = f"serving model {b['load_serving_s']:.1f} s"
            else:
                loaded = (
                    f"members {b['load_members_s']:.1f} s ("
                    + ", ".join(f"{k} {v:.1f}" for k, v in b["per_member"].items())
                    + f"), fusing {b['fuse_s']:.1f} s"
                )
            self.stdout.write(
                f"  start-up {b['startup_rest_s']:.1f} s, TensorFlow import "
                f"{b['import_tensorflow_s']:.1f} s, checksums {b['verify_s']:.1f} s, {loaded}, "
                f"warm-up {b['warm_up_s']:.1f} s, first result {b['first_result_s']:.1f} s"
            )
            self.stdout.write(
                "  resident MB after each step: "
                + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in b["rss_mb_after"].items())
            )

    def _version(self, version, demo) -> ModelVersion:
        if version is not None:
            try:
                row = ModelVersion.objects.get(version=version)
            except ModelVersion.DoesNotExist:
                raise CommandError(f"no model version {version}") from None
        elif demo:
            row = ModelVersion.objects.filter(is_demo=True).first()
            if row is None:
                from inference.demo import register_demo_version

                self.stderr.write("No demo version yet: building and registering one...")
                row = register_demo_version(activate=False)
        else:
            from inference.artifacts import get_active_version

            row = get_active_version()
            if row is None:
                raise CommandError("no active version: pass --version N or --demo")
        return row
