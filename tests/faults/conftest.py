"""Fault-test fixtures: a private ``redis-server`` the test may stop and start, and the portal's
web server (gunicorn) as a subprocess, so uploads go through HTTP like a lab's.

Nothing here touches the machine's own services: the private Redis listens on a free port of its
own and is stopped with the test.
"""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from cases.bench.stack import free_port
from tests.fixtures.worker import process_env


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """A ``redis-server`` on a free port, without persistence: a restart loses what it held."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _answers(self.port):
            if time.monotonic() > deadline:
                pytest.fail("the private redis-server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


class Portal:
    """The web process (gunicorn, two workers) on a free port, sharing the test's database."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Portal":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "leukemia_portal.wsgi",
                    "-c",
                    "leukemia_portal/gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "2",
                    "--timeout",
                    "120",
                    "--access-logfile",
                    "-",
                ],  # fmt: skip
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.3).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def portal_factory(transactional_db, tmp_path):
    portals: list[Portal] = []

    def start(**extra) -> Portal:
        portal = Portal(process_env(**extra), Path(tmp_path) / f"web-{len(portals) + 1}.log")
        portals.append(portal)
        return portal.start()

    try:
        yield start
    finally:
        for portal in portals:
            portal.stop()
