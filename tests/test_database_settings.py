"""How long a process keeps its database connection."""

from leukemia_portal.settings.base import connection_lifetime

POSTGRES = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


def test_postgresql_connections_are_kept_a_minute_and_checked_before_reuse():
    # A worker opened one per task: about a hundred for a 50-image case.
    database = connection_lifetime({"ENGINE": POSTGRES})
    assert database["CONN_MAX_AGE"] == 60
    assert database["CONN_HEALTH_CHECKS"]  # one the server dropped is replaced, not used


def test_sqlite_connections_last_a_request_and_the_variable_wins():
    assert connection_lifetime({"ENGINE": SQLITE})["CONN_MAX_AGE"] == 0
    assert connection_lifetime({"ENGINE": POSTGRES}, 0)["CONN_MAX_AGE"] == 0
    assert connection_lifetime({"ENGINE": SQLITE}, 30)["CONN_MAX_AGE"] == 30
