"""First-run accounts: an admin, and one lab with a technologist, a hematologist and a lab
manager. New passwords are written to a file (0600); existing accounts are left as they are."""

import secrets
from pathlib import Path

from django.core.management.base import BaseCommand

from cases.models import Membership
from cases.services import lab_ensure, membership_set, user_ensure

Role = Membership.Role


class Command(BaseCommand):
    help = (
        "Create the admin and a lab with technologist, hematologist and lab manager accounts if "
        "missing; record new passwords in a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--credentials-file", default="var/credentials.txt")
        parser.add_argument("--lab", default="Hematology laboratory")
        parser.add_argument("--admin", default="admin")
        parser.add_argument("--technologist", default="technologist")
        parser.add_argument("--hematologist", default="hematologist")
        parser.add_argument("--manager", default="labmanager")

    def handle(self, *args, credentials_file, lab, **options):
        path = Path(credentials_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        the_lab, created = lab_ensure(name=lab)
        if created and options["verbosity"]:
            self.stdout.write(f"Created lab {the_lab.name!r}.")
        accounts = [
            ("admin", options["admin"], None),
            ("technologist", options["technologist"], Role.TECHNOLOGIST),
            ("hematologist", options["hematologist"], Role.HEMATOLOGIST),
            ("lab manager", options["manager"], Role.MANAGER),
        ]
        for title, username, role in accounts:
            password = secrets.token_urlsafe(12)
            user, created = user_ensure(username=username, password=password, is_staff=not role)
            if created:
                lines = [line for line in lines if not line.startswith(f"{title} login:")]
                lines.append(f"{title} login: {username} / {password}")
                if options["verbosity"]:
                    self.stdout.write(f"Created {title} account {username!r}.")
            if role and not Membership.objects.filter(lab=the_lab, user=user).exists():
                membership_set(lab=the_lab, user=user, role=role)
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
