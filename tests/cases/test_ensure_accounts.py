"""The run command's first-run accounts: an admin and one lab with each role."""

from django.contrib.auth import get_user_model
from django.core.management import call_command

from cases.models import Lab, Membership


def test_first_run_makes_a_lab_with_each_role_and_records_the_logins(tmp_path, db):
    credentials = tmp_path / "credentials.txt"
    call_command("ensure_accounts", "--credentials-file", str(credentials), verbosity=0)

    lab = Lab.objects.get()
    roles = dict(Membership.objects.filter(lab=lab).values_list("user__username", "role"))
    assert roles == {
        "technologist": "technologist",
        "hematologist": "hematologist",
        "labmanager": "manager",
    }
    assert get_user_model().objects.get(username="admin").is_staff
    lines = credentials.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "admin login",
        "technologist login",
        "hematologist login",
        "lab manager login",
    ]
    username, password = lines[1].split(": ", 1)[1].split(" / ")
    assert get_user_model().objects.get(username=username).check_password(password)
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"

    call_command("ensure_accounts", "--credentials-file", str(credentials), verbosity=0)
    assert credentials.read_text().splitlines() == lines  # a second run changes nothing
    assert Membership.objects.count() == 3
