"""A throwaway copy of the portal for benchmarks: its own database, media and queue, a gunicorn
web process and a Celery worker, on the settings of the process that starts it.

Nothing of it stays behind and nothing of the real portal is touched:

* the database: on PostgreSQL a new database on the same server (dropped at the end); on SQLite
  the default file under the stack's own folder (``LP_VAR_DIR``);
* the broker: the same broker URL with a queue of the stack's own; the default filesystem
  transport lives under the stack's folder;
* the model: the version's artifacts are linked (not copied) into the stack's media and its row
  recreated there, active.

Every other setting (``LP_CLASSIFY_BATCH_MAX``, time limits...) is the caller's environment, so
``LP_CLASSIFY_BATCH_MAX=1 manage.py bench_case`` measures that choice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.db import connection

READY_TIMEOUT_S = 300

SETUP = """
import json, sys
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from cases import services
from cases.models import Lab, Membership
from inference import registry
from inference.models import ModelVersion
row, patients = json.loads(sys.stdin.read())
version = ModelVersion.objects.create(**row)
registry.activate_version(version)
user = get_user_model().objects.create_user(username="bench", password=None)
lab = Lab.objects.create(name="Benchmark lab")
Membership.objects.create(lab=lab, user=user, role="technologist")
specimens = []
for i in range(patients):
    patient = services.patient_create(
        lab=lab, created_by=user, record_number=f"BENCH-{i}", display_label=f"Bench {i}"
    )
    specimens.append(
        services.specimen_create(patient=patient, created_by=user, accession_number=f"B-{i}").pk
    )
print(json.dumps({"token": Token.objects.create(user=user).key, "specimens": specimens}))
"""


class StackError(RuntimeError):
    """The stack could not be set up or a process of it did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(db: dict, name: str | None = None) -> str:
    """A ``DATABASE_URL`` for Django's connection settings ``db`` (another ``name`` if given)."""
    name = name or db["NAME"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{name}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{name}"


class Stack:
    """Set up with ``start(version, patients=N)``, torn down with ``stop()`` (or ``with``)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="lp-bench-"))
        self.tag = uuid.uuid4().hex[:10]
        self.port = free_port()
        self.processes: list[subprocess.Popen] = []
        self.database_name: str | None = None  # a PostgreSQL database of its own
        self.token = ""
        self.specimens: list[int] = []
        self.env = self._environment()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def vendor(self) -> str:
        return connection.vendor

    @property
    def broker(self) -> str:
        return settings.CELERY_BROKER_URL.split("://", 1)[0]

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "LP_VAR_DIR", "AWS_STORAGE_BUCKET_NAME"}
            and k != "CELERY_TASK_DEFAULT_QUEUE"
        }
        env.update(
            DJANGO_SETTINGS_MODULE=os.environ["DJANGO_SETTINGS_MODULE"],
            LP_VAR_DIR=str(self.root),
            CELERY_TASK_DEFAULT_QUEUE=f"lp-bench-{self.tag}",
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONUNBUFFERED="1",
        )
        if connection.vendor == "postgresql":
            self.database_name = f"lp_bench_{self.tag}"
            env["DATABASE_URL"] = database_url(connection.settings_dict, self.database_name)
        return env

    # --- Set-up --------------------------------------------------------------------------

    def start(self, version, *, patients: int) -> Stack:
        if self.database_name:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.database_name}"')
        self._manage("migrate", "--noinput")
        self._link_artifacts(version)
        out = self._manage("shell", "-c", SETUP, stdin=json.dumps([_row(version), patients]))
        made = json.loads(out.strip().splitlines()[-1])
        self.token, self.specimens = made["token"], made["specimens"]
        self._start_worker()
        self._start_web()
        return self

    def _manage(self, *args, stdin=None) -> str:
        result = subprocess.run(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
            cwd=settings.BASE_DIR,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise StackError(f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def _link_artifacts(self, version) -> None:
        from inference.artifacts import artifact_local_path, ood_local_path, serving_local_path

        links = {m["artifact"]: artifact_local_path(version, m) for m in version.members}
        if version.ood:
            links[version.ood["artifact"]] = ood_local_path(version)
        if version.serving:
            links[version.serving["artifact"]] = serving_local_path(version)
        for name, source in links.items():
            target = self.root / "media" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(Path(source).resolve())

    def query(self, sql: str, params: list) -> list[tuple]:
        """Rows of ``sql`` (``%s`` placeholders) on the stack's database, through the driver
        itself: the benchmark watches the stack without a Django connection of its own."""
        if self.database_name is None:
            with closing(
                sqlite3.connect(f"file:{self.root / 'db.sqlite3'}?mode=ro", uri=True)
            ) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg2

        db = connection.settings_dict
        with (
            closing(
                psycopg2.connect(
                    dbname=self.database_name,
                    user=db.get("USER") or None,
                    password=db.get("PASSWORD") or None,
                    host=db.get("HOST") or "127.0.0.1",
                    port=db.get("PORT") or None,
                )
            ) as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _start_worker(self) -> None:
        log = self.root / "worker.log"
        self._spawn(
            [sys.executable, "-m", "celery", "-A", "leukemia_portal", "worker",
             "--loglevel=INFO", "--concurrency=1", "-Q", self.env["CELERY_TASK_DEFAULT_QUEUE"],
             "--beat", "--schedule", str(self.root / "celerybeat-schedule"),
             "-n", f"bench-{self.tag}@%h"],
            log,
        )  # fmt: skip
        self._wait(lambda: " ready." in _read(log), "the Celery worker", log)

    def _start_web(self) -> None:
        log = self.root / "web.log"
        self._spawn(
            [sys.executable, "-m", "gunicorn", "leukemia_portal.wsgi", "--bind",
             f"127.0.0.1:{self.port}", "--workers", "2", "--timeout", "120"],
            log,
        )  # fmt: skip
        self._wait(lambda: _listening(self.port), "gunicorn", log)

    def _spawn(self, command: list[str], log: Path) -> None:
        with open(log, "ab") as out:
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=settings.BASE_DIR,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def _wait(self, ready, what: str, log: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            if self.processes[-1].poll() is not None or time.monotonic() > deadline:
                raise StackError(f"{what} did not start:\n{_read(log)[-3000:]}")
            time.sleep(0.2)

    # --- Tear-down -----------------------------------------------------------------------

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.database_name:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _row(version) -> dict:
    """The fields that recreate ``version`` (a ``ModelVersion``) in the stack's database."""
    return {
        "name": version.name,
        "version": version.version,
        "is_demo": version.is_demo,
        "members": version.members,
        "preprocessing": version.preprocessing,
        "class_names": version.class_names,
        "metrics": {},
        "review_threshold": version.review_threshold,
        "ood": version.ood,
        "calibration": version.calibration,
        "serving": version.serving,
        "notes": f"copy of {version} for a benchmark",
    }


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False
