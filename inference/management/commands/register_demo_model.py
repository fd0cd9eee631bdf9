"""``manage.py register_demo_model``: register the untrained demo ensemble (builds it once)."""

from django.core.management.base import BaseCommand

from inference import artifacts, demo


class Command(BaseCommand):
    help = (
        "Register the DEMO ensemble: five real architectures with untrained weights "
        "(predictions are meaningless). Built once and cached under var/demo-cache/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--activate", action="store_true", help="activate the new version")
        parser.add_argument(
            "--if-none-active",
            action="store_true",
            help="do nothing when a version is already active; otherwise register and activate",
        )
        parser.add_argument("--input-size", type=int, default=demo.DEMO_INPUT_SIZE)

    def handle(self, *args, activate, if_none_active, input_size, **options):
        if if_none_active:
            active = artifacts.get_active_version()
            if active is not None:
                self.stdout.write(f"{active} is active: nothing to do.")
                return
            activate = True
        version = demo.register_demo_version(activate=activate, input_size=input_size)
        self.stdout.write(
            self.style.WARNING(f"Registered {version}. {version.notes.split('.')[0]}.")
        )
