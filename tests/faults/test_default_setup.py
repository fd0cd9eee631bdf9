"""The README's default set-up under load: SQLite and the filesystem broker, with the ``local``
settings that ``scripts/run`` uses, a gunicorn web process and a Celery worker with beat.

Old behaviour: 30 API uploads 0.5 s apart made 3 of about 95 classifications fail with
``database is locked`` and left those images ``queued`` or ``processing`` for good; 1 image of a
50-image case upload was never classified. Now: every upload answered 202 and every image ends
``done`` with exactly one prediction, and no process logs a locked database.

Runs in its own folder (``LP_VAR_DIR``), never on a developer's ``var/``. The demo ensemble's
artifacts are linked into that folder's media from the test session's media.
"""

import concurrent.futures
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.faults.conftest import Portal
from tests.fixtures.worker import Worker
from tests.images import image_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]

SETUP = """
import json, sys
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from cases import services
from inference import registry
from inference.models import ModelVersion
from cases.models import Lab, Membership
members, preprocessing, class_names = json.loads(sys.stdin.read())
version = ModelVersion.objects.create(
    name="demo-ensemble", version=1, is_demo=True, members=members,
    preprocessing=preprocessing, class_names=class_names, metrics={},
)
registry.activate_version(version)
user = get_user_model().objects.create_user(username="tech", password="pw-tech-123456")
lab = Lab.objects.create(name="Load lab")
Membership.objects.create(lab=lab, user=user, role="technologist")
patient = services.patient_create(
    lab=lab, created_by=user, record_number="LOAD-1", display_label="Load"
)
specimen = services.specimen_create(patient=patient, created_by=user, accession_number="L-1")
print(Token.objects.create(user=user).key, specimen.pk)
"""


class DefaultSetup:
    def __init__(self, root: Path, members, preprocessing, class_names):
        self.root = root
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "LP_"))
        }
        self.env.update(
            DJANGO_SETTINGS_MODULE="leukemia_portal.settings.local",
            LP_VAR_DIR=str(root),
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONUNBUFFERED="1",
        )
        media_models = root / "media" / "models"
        media_models.mkdir(parents=True)
        for m in members:  # the session's stored artifacts, linked, not copied
            link = root / "media" / m["artifact"]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(settings.MEDIA_ROOT) / m["artifact"])
        self._manage("migrate", "--noinput")
        import json

        out = self._manage(
            "shell", "-c", SETUP, stdin=json.dumps([members, preprocessing, class_names])
        )
        token, specimen = out.split()[-2:]
        self.token, self.specimen_id = token, int(specimen)
        self.portal = Portal(self.env, root / "web.log")
        self.worker = Worker(
            queue="leukemia-portal", log_path=root / "worker.log", env=self.env, beat_dir=root
        )

    def _manage(self, *args, stdin=None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def upload(self, files: list[tuple[str, bytes]]) -> requests.Response:
        return requests.post(
            f"{self.portal.url}/api/v1/specimens/{self.specimen_id}/images/",
            files=[("files", (name, content, "image/png")) for name, content in files],
            headers={"Authorization": f"Token {self.token}"},
            timeout=120,
        )

    def statuses(self) -> dict[int, tuple[str, int]]:
        with sqlite3.connect(f"file:{self.root / 'db.sqlite3'}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT i.id, i.status, (SELECT COUNT(*) FROM cases_prediction p "
                "WHERE p.image_id = i.id) FROM cases_smearimage i"
            ).fetchall()
        return {image_id: (status, predictions) for image_id, status, predictions in rows}


@pytest.fixture
def default_setup(tmp_path, _demo_stored_members):
    from inference import demo

    # One member by default (the lifecycle does not depend on the ensemble's size, and CI time
    # does); LP_FAULTS_FULL_ENSEMBLE=1 runs the five-member DEMO as scripts/run serves it.
    members = [
        m
        for m in _demo_stored_members
        if os.environ.get("LP_FAULTS_FULL_ENSEMBLE") or m["architecture"] == "MobileNetV2"
    ]
    setup = DefaultSetup(
        tmp_path / "var",
        members,
        demo.demo_preprocessing(),
        list(demo.DEMO_CLASS_NAMES),
    )
    setup.worker.start()
    setup.portal.start()
    try:
        yield setup
    finally:
        setup.portal.stop()
        setup.worker.stop()


def test_30_uploads_in_15_s_and_a_50_image_case_all_end_done_on_sqlite(default_setup):
    setup = default_setup
    started = time.monotonic()

    def one_by_one(client: int) -> list[int]:  # three clients, ten uploads each, 1.5 s apart
        codes = []
        for i in range(10):
            seed = 1000 + client * 10 + i
            codes.append(setup.upload([(f"u{seed}.png", image_bytes(seed=seed))]).status_code)
            time.sleep(max(0.0, started + 0.5 * (client + 3 * i) - time.monotonic()))
        return codes

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        singles = [pool.submit(one_by_one, c) for c in range(3)]
        case = pool.submit(
            setup.upload, [(f"case{i}.png", image_bytes(seed=2000 + i)) for i in range(50)]
        )
        codes = [code for future in singles for code in future.result()]
        case_response = case.result()
    upload_seconds = time.monotonic() - started

    assert codes == [202] * 30, codes
    assert case_response.status_code == 202, case_response.text
    assert len(case_response.json()["images"]) == 50
    assert upload_seconds < 30, upload_seconds

    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        statuses = setup.statuses()
        if len(statuses) == 80 and all(s == ("done", 1) for s in statuses.values()):
            break
        time.sleep(1)
    all_done_seconds = time.monotonic() - started
    unfinished = {k: v for k, v in setup.statuses().items() if v != ("done", 1)}
    # Shown with -rP: the figures the closing notes and the README quote.
    print(
        f"uploads: 30 single + 1 case of 50 in {upload_seconds:.1f} s; all 80 done "
        f"{all_done_seconds:.1f} s after the first upload; unfinished {len(unfinished)}"
    )
    logs = setup.worker.log() + (setup.root / "web.log").read_text()
    assert not unfinished, f"{unfinished}\n{setup.worker.log()[-4000:]}"
    assert "database is locked" not in logs


READ_THEN_WRITE = """
import os, time
from django.db import transaction
from cases.models import AuditEvent
start_at = float(os.environ["START_AT"])
time.sleep(max(0.0, start_at - time.time()))
with transaction.atomic():
    seen = AuditEvent.objects.count()  # a read first, as the lifecycle's lock-check-act does
    time.sleep(1.0)  # the other writer reads meanwhile
    AuditEvent.objects.create(event_type=AuditEvent.EventType.LOGOUT, extra_data={"seen": seen})
print("ok")
"""


def test_two_writers_that_read_first_never_fail_on_a_locked_sqlite_database(tmp_path):
    """SQLite's "database is locked" that no timeout cures: two transactions read, then both
    want to write. With ``BEGIN IMMEDIATE`` the second one waits for the first instead."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "LP_"))
    }
    env.update(DJANGO_SETTINGS_MODULE="leukemia_portal.settings.local", LP_VAR_DIR=str(tmp_path))
    manage = [sys.executable, "manage.py"]
    migrate = subprocess.run(
        [*manage, "migrate", "--noinput"], cwd=settings.BASE_DIR, env=env, capture_output=True
    )
    assert migrate.returncode == 0, migrate.stderr
    env["START_AT"] = str(time.time() + 6)
    writers = [
        subprocess.Popen(
            [*manage, "shell", "-c", READ_THEN_WRITE],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [w.communicate(timeout=120) for w in writers]
    for (out, err), writer in zip(results, writers, strict=True):
        assert writer.returncode == 0 and out.strip().endswith("ok"), err[-2000:]
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM cases_auditevent").fetchone() == (2,)
