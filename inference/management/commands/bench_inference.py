"""``manage.py bench_inference``: images/s and latency of the engine against the plain approach."""

from django.core.management.base import BaseCommand, CommandError

from inference.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Benchmark the fused, batched engine against calling model.predict per image and per "
        "member, on synthetic images, in the same run. Uses the active version unless --version "
        "or --demo is given (--demo reuses the newest demo version or registers one as a "
        "candidate, leaving the active version alone)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Django's own --version (print Django's version) would clash with ours.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="version number to benchmark")
        which.add_argument("--demo", action="store_true", help="use the untrained demo ensemble")
        parser.add_argument("--images", type=int, default=64)
        parser.add_argument("--batch", type=int, default=16)

    def handle(self, *args, version, demo, images, batch, **options):
        if images < 1 or batch < 1:
            raise CommandError("--images and --batch must be at least 1")
        if version is not None:
            try:
                row = ModelVersion.objects.get(version=version)
            except ModelVersion.DoesNotExist:
                raise CommandError(f"no model version {version}") from None
        elif demo:
            row = ModelVersion.objects.filter(is_demo=True).first()
            if row is None:
                from inference.demo import register_demo_version

                self.stdout.write("No demo version yet: building and registering one...")
                row = register_demo_version(activate=False)
        else:
            from inference.artifacts import get_active_version

            row = get_active_version()
            if row is None:
                raise CommandError("no active version: pass --version N or --demo")

        from inference.benchmark import format_report, run_benchmark
        from inference.engine import EnsembleEngine

        self.stdout.write(f"Loading {row}...")
        engine = EnsembleEngine.from_version(row, batch_size=batch)
        report = run_benchmark(engine=engine, images=images, batch=batch)
        self.stdout.write(format_report(report))
