"""``manage.py bench_training``: training images/s of a profile's members on this machine."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Measure the training throughput of a profile's members as retrain trains them (model, "
        "optimiser, batch, precision, augmentation) on random images, to plan a profile's "
        "per-member time caps. Run it on an otherwise idle machine."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profile", default="cpu", help="paper | cpu | smoke | path.json")
        parser.add_argument(
            "--member", action="append", dest="members", help="only this member (repeatable)"
        )
        parser.add_argument(
            "--precision",
            action="append",
            dest="precisions",
            choices=["float32", "mixed_bfloat16", "mixed_float16"],
            help="measure at this precision instead of the profile's (repeatable, to compare)",
        )
        parser.add_argument("--steps", type=int, default=12, help="timed steps per member")
        parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
        parser.add_argument(
            "--epoch-images", type=int, help="also print minutes per epoch of this many images"
        )
        parser.add_argument(
            "--val-images",
            type=int,
            default=0,
            help="with --epoch-images: also time each epoch's BatchNorm refresh and validation "
            "of this many images, and plan each member's minutes for the profile's epochs",
        )

    def handle(self, *args, **opts):
        from ml_training import benchmark
        from ml_training.profiles import load_profile

        epoch_images, val_images = opts["epoch_images"], opts["val_images"]
        if val_images and not epoch_images:
            raise CommandError("--val-images plans whole epochs: give --epoch-images too")
        try:
            profile = load_profile(opts["profile"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Profile {profile['name']}, {profile.get('threads')} threads")
        self.stdout.write(benchmark.table_header(epoch_images=epoch_images, val_images=val_images))
        try:
            timings = benchmark.run(
                profile,
                members=opts["members"],
                precisions=opts["precisions"],
                steps=opts["steps"],
                warmup=opts["warmup"],
                val_images=val_images,
                on_result=lambda t: self.stdout.write(
                    benchmark.table_row(t, epoch_images=epoch_images)
                ),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        footer = benchmark.table_footer(timings, epoch_images=epoch_images, val_images=val_images)
        if footer:
            self.stdout.write(footer)
