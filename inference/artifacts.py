"""The model registry's reads: the active version, a member, and local, checksum-verified copies
of a version's stored files (member ``.keras`` files, the serving model, the out-of-domain
detector, plots).

No TensorFlow or Keras here: the web process (admin pages, recovery) imports this. The writes
(register, activate, retire) are in ``inference.registry``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from inference.checksums import hash_ahead, sha256_file
from inference.exceptions import ArtifactIntegrityError
from inference.models import ModelVersion

_CHUNK = 1024 * 1024


def get_active_version() -> ModelVersion | None:
    """The active version, or None."""
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def get_member(version: ModelVersion, member: str | Mapping[str, Any]) -> dict[str, Any]:
    """A member dict of ``version`` by name (or the dict itself); KeyError if unknown."""
    name = member["name"] if isinstance(member, Mapping) else member
    for m in version.members:
        if m["name"] == name:
            return m
    raise KeyError(f"{version} has no member {name!r}; members: {version.member_names}")


def stored_artifacts(version: ModelVersion) -> dict[str, dict[str, Any]]:
    """The extra files stored with a version: ``{name: {"artifact", "sha256", "bytes",
    "content_type"}}`` from ``metrics["artifacts"]``.

    An entry whose value is a string naming another stored entry (``"confusion_matrix":
    "confusion_ensemble.png"``, as ``ml_training.evaluate`` lists its plots) is an alias and
    resolves to that entry plus ``"alias_of": <entry name>``; other strings (files that were
    never stored) are left out.
    """
    raw = (version.metrics or {}).get("artifacts") or {}
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        alias_of = None
        if isinstance(value, str):
            alias_of, value = value, raw.get(value)
        if isinstance(value, Mapping) and isinstance(value.get("artifact"), str):
            out[str(key)] = {**value, "alias_of": alias_of} if alias_of else dict(value)
    return out


def artifact_local_path(
    version: ModelVersion, member: str | Mapping[str, Any], *, verify: bool = True
) -> Path:
    """A local file holding ``member``'s ``.keras`` artifact, checked against its sha256.

    With a local ``FileSystemStorage`` this is the stored file itself. With a remote storage
    (S3) the artifact is downloaded once to ``LP_MODEL_CACHE_DIR/<sha256>.keras`` (atomically:
    a partial download is never visible) and reused afterwards. Raises ``ArtifactIntegrityError``
    naming the member when the file is missing or its sha256 differs from the registry's.
    """
    m = get_member(version, member)
    what = f"artifact of member {m['name']!r} of {version}"
    return stored_file_local_path(m["artifact"], m["sha256"], what, verify=verify)


def ood_local_path(version: ModelVersion) -> Path | None:
    """The version's out-of-domain detector file (sha256-verified), or None without one."""
    return _record_local_path(version.ood, f"out-of-domain detector of {version}")


def serving_local_path(version: ModelVersion) -> Path | None:
    """The version's serving model file (sha256-verified), or None without one."""
    return _record_local_path(version.serving, f"serving model of {version}")


def _record_local_path(record: dict | None, what: str, *, verify: bool = True) -> Path | None:
    """The local file of a version's file record (``serving``, ``ood``), or None without one."""
    if not (record or {}).get("artifact"):
        return None
    return stored_file_local_path(record["artifact"], record["sha256"], what, verify=verify)


def hash_files_ahead(version: ModelVersion | None = None) -> None:
    """Hash the serving model and out-of-domain detector files of ``version`` (by default the
    active one) ahead (``checksums.hash_ahead``): what a starting worker does on its second core
    while the first imports TensorFlow (``inference.startup``), so that loading them checks them
    at once. Fetched first when the storage is remote. Run in a thread of its own: closes its
    database connection."""
    from django.db import connection

    try:
        version = version or get_active_version()
        records = [version.serving, version.ood] if version is not None else []
        for record in records:
            path = _record_local_path(record, "", verify=False)
            if path is not None:
                hash_ahead(path)
    finally:
        connection.close()


def stored_file_local_path(artifact: str, expected: str, what: str, *, verify: bool = True) -> Path:
    """A local copy of the stored file ``artifact`` whose sha256 must be ``expected``;
    ``what`` names it in the ``ArtifactIntegrityError`` raised when it is missing or differs."""
    storage = default_storage
    try:
        path = Path(storage.path(artifact))
    except NotImplementedError:
        path = _cached_download(storage, artifact, expected, what)
    if not path.is_file():
        raise ArtifactIntegrityError(f"{what} is missing: {artifact}")
    if verify:
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"{what} is corrupt or was replaced: "
                f"sha256 {actual} != registered {expected} ({artifact})"
            )
    return path


def verify_artifacts(version: ModelVersion) -> None:
    """Check every member's artifact (and the detector's) is there with its registered sha256,
    without loading it. Raises ``ArtifactIntegrityError`` naming the first that fails.
    """
    for member in version.members:
        artifact_local_path(version, member)
    ood_local_path(version)
    if version.serving:
        from inference.serving_model import check_serving_record

        check_serving_record(version)
        serving_local_path(version)


def _cached_download(storage, artifact: str, expected: str, what: str) -> Path:
    cache_dir = Path(settings.LP_MODEL_CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(artifact).suffix
    target = cache_dir / f"{expected}{suffix}"
    if target.is_file() and sha256_file(target) == expected:
        return target
    if not storage.exists(artifact):
        raise ArtifactIntegrityError(f"{what} is missing from storage: {artifact}")
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".download-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, storage.open(artifact, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
