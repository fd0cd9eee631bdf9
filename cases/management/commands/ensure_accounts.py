"""Create the first-run accounts (an admin and a clinician) and write their logins to a file."""

import secrets
from pathlib import Path

from django.core.management.base import BaseCommand

from cases.services import user_ensure


class Command(BaseCommand):
    help = "Create an admin and a clinician account if missing; record new passwords in a file."

    def add_arguments(self, parser):
        parser.add_argument("--credentials-file", default="var/credentials.txt")
        parser.add_argument("--admin", default="admin")
        parser.add_argument("--clinician", default="clinician")

    def handle(self, *args, credentials_file, admin, clinician, **options):
        path = Path(credentials_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        for username, is_staff, role in ((admin, True, "admin"), (clinician, False, "clinician")):
            password = secrets.token_urlsafe(12)
            _, created = user_ensure(username=username, password=password, is_staff=is_staff)
            if created:
                lines = [line for line in lines if not line.startswith(f"{role} login:")]
                lines.append(f"{role} login: {username} / {password}")
                if options["verbosity"]:
                    self.stdout.write(f"Created {role} account {username!r}.")
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
