"""``bench_case`` end to end: a throwaway portal (gunicorn, a Celery worker, a database and a
queue of its own) classifies a case and single images beside it, reports every figure, and
leaves nothing behind."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _bench_databases() -> list[str]:
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'lp_bench_%%'")
        return [row[0] for row in cursor.fetchall()]


def test_a_case_and_singles_are_all_classified_and_timed(transactional_db, light_version):
    before = _bench_databases()
    out = io.StringIO()
    call_command(
        "bench_case", "--images", "6", "--singles", "2", "--single-interval", "0.5", "--json",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    figures = json.loads(out.getvalue())
    assert figures["case_images"] == 6 and figures["singles"] == 2
    assert figures["unfinished"] == 0 and figures["failed"] == 0
    assert 0 < figures["case_upload_seconds"] <= figures["case_seconds"] < 300
    assert 0 < figures["single_p50_s"] <= figures["single_p95_s"] <= figures["single_max_s"]
    assert figures["database"] == connection.vendor
    assert f" v{light_version.version} DEMO" in figures["version"]
    assert _bench_databases() == before  # its database is dropped again
