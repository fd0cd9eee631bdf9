"""A busy morning in miniature: one client uploads a whole case while a second client uploads
single images, through the REST API of a running ``Stack``; how long until every image has its
result.

Times come from the stack's database: an image's result time is its prediction's ``created_at``,
compared with the wall-clock time at which its upload request started (same machine, same
clock), so the polling interval does not blur them.
"""

from __future__ import annotations

import mimetypes
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


@dataclass
class Load:
    case: list[tuple[str, bytes]]
    singles: list[tuple[str, bytes]]
    single_interval_s: float = 1.0
    timeout_s: float = 600.0


@dataclass
class Figures:
    case_images: int
    case_seconds: float | None  # case upload request start -> last case result saved
    case_upload_seconds: float  # the upload request alone
    single_p50_s: float | None
    single_p95_s: float | None
    single_max_s: float | None
    singles: int
    unfinished: int  # images without a result when the run ended (case and singles)
    failed: int
    notes: list[str] = field(default_factory=list)

    def as_json(self, **extra) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in vars(self).items()} | (
            extra
        )


def images_from(folder: Path | None, n: int, *, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` distinct images: the first ``n`` files of ``folder`` (sorted, recursive), or
    synthetic smears drawn here."""
    if folder is None:
        from inference.benchmark import synthetic_images

        return [
            (f"synthetic-{seed + i}.png", b) for i, b in enumerate(synthetic_images(n, seed=seed))
        ]
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < n:
        raise ValueError(f"{folder} holds {len(files)} images, {n} are needed")
    return [(p.name, p.read_bytes()) for p in files[:n]]


def run(stack, load: Load) -> Figures:
    """Upload ``load.case`` into the stack's first specimen in one request and, from a second
    client, ``load.singles`` one by one into the second specimen while the case is in flight."""
    session = _client(stack.token)
    case_started = time.time()
    case_response: dict = {}

    def upload_case():
        case_response.update(_post(session, stack, stack.specimens[0], load.case, timeout=300))
        case_response["answered_at"] = time.time()

    case = threading.Thread(target=upload_case)
    case.start()
    single_starts: dict[int, float] = {}
    single_client = _client(stack.token)
    for name, content in load.singles:
        time.sleep(load.single_interval_s)
        started = time.time()
        for image in _post(single_client, stack, stack.specimens[1], [(name, content)])["images"]:
            single_starts[image["id"]] = started
    case.join()
    case_upload_seconds = case_response.get("answered_at", time.time()) - case_started
    case_ids = [image["id"] for image in case_response.get("images", [])]
    ids = case_ids + list(single_starts)
    deadline = time.monotonic() + load.timeout_s
    while time.monotonic() < deadline and _count_unfinished(stack, ids):
        time.sleep(0.5)
    return _figures(
        stack, case_started, case_upload_seconds, case_ids, single_starts, len(load.case)
    )


def _count_unfinished(stack, ids: list[int]) -> int:
    statuses = _statuses(stack)
    return sum(statuses.get(i) in ("queued", "processing") for i in ids)


def _statuses(stack) -> dict[int, str]:
    """Every image of the stack's database (it holds only this benchmark's)."""
    return dict(stack.query("SELECT id, status FROM cases_smearimage", []))


def _figures(stack, case_started, upload_seconds, case_ids, single_starts, case_images) -> Figures:
    rows = stack.query("SELECT image_id, created_at FROM cases_prediction", [])
    done_at = {image_id: _timestamp(created) for image_id, created in rows}
    statuses = _statuses(stack)
    ours = [statuses.get(i) for i in case_ids + list(single_starts)]
    case_done = [done_at[i] for i in case_ids if i in done_at]
    latencies = sorted(done_at[i] - t for i, t in single_starts.items() if i in done_at)
    return Figures(
        case_images=case_images,
        case_seconds=(max(case_done) - case_started) if len(case_done) == case_images else None,
        case_upload_seconds=upload_seconds,
        single_p50_s=statistics.median(latencies) if latencies else None,
        single_p95_s=_quantile(latencies, 0.95),
        single_max_s=max(latencies) if latencies else None,
        singles=len(single_starts),
        unfinished=case_images - len(case_ids) + sum(s in ("queued", "processing") for s in ours),
        failed=sum(s == "failed" for s in ours),
    )


def _timestamp(value) -> float:
    """A ``created_at`` as the driver returns it (PostgreSQL: an aware datetime; SQLite: UTC
    text) in seconds since the epoch."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (linear interpolation, as numpy's default); None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _client(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    # As a TLS-terminating proxy would say (the prod settings redirect plain HTTP otherwise).
    session.headers["X-Forwarded-Proto"] = "https"
    return session


def _post(session, stack, specimen_id: int, files, *, timeout: float = 60) -> dict:
    response = session.post(
        f"{stack.url}/api/v1/specimens/{specimen_id}/images/",
        files=[("files", (name, content, _content_type(name))) for name, content in files],
        timeout=timeout,
    )
    if response.status_code != 202:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
    return response.json()


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
