"""The web access log keeps patient identifiers out (``leukemia_portal/gunicorn.conf.py``).

A real gunicorn, started as ``scripts/run`` starts it: a patient search by record number and a
page opened from its results must leave only paths in the log, never the query or the Referer.
"""

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]


def test_the_access_log_never_records_a_searched_record_number(portal_factory):
    portal = portal_factory()
    secret = "MRN-SECRET-4711"
    searched = requests.get(f"{portal.url}/?q={secret}", allow_redirects=False, timeout=30)
    opened = requests.get(
        f"{portal.url}/accounts/login/",
        headers={"Referer": f"{portal.url}/?q={secret}"},
        timeout=30,
    )
    assert (searched.status_code, opened.status_code) == (302, 200)
    portal.stop()  # flushes the log
    log = portal.log_path.read_text()
    assert '"GET / HTTP/1.1" 302' in log and '"GET /accounts/login/ HTTP/1.1" 200' in log
    assert secret not in log
