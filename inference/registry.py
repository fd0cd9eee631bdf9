"""The model registry's writes and reads: register, activate, retire, find and fetch artifacts.

No TensorFlow or Keras here: the web process (admin actions, management commands) imports this.

* ``register_version`` copies each member's ``.keras`` file (and extra files such as plots) into
  the default storage under ``models/v{N}/``, records their sha256 and creates the row. Nothing
  is left half-stored: on any failure the copied files are deleted and no row remains. (If the
  caller's own outer transaction rolls back later, the files of that version stay orphaned under
  ``models/v{N}/``: Django has no "on rollback" hook. Registering outside a caller's transaction
  avoids it.)
* ``activate_version`` makes one version active; the previously active one becomes ``retired``.
  ``signals.version_activated`` is sent once the transaction commits. Workers notice the change
  through ``inference.engine.get_engine`` (one small query per call) without a restart.
* Version numbers are ``max + 1``. Registry writes hold a PostgreSQL transaction-level advisory
  lock, because ``SELECT ... FOR UPDATE`` cannot lock a row that does not exist yet (two
  concurrent ``max + 1`` would both see the same maximum); on other databases (SQLite, which
  serialises writers anyway) a collision on the unique version number is retried.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from inference import signals
from inference.checksums import sha256_file
from inference.exceptions import ArtifactIntegrityError
from inference.models import ModelVersion
from inference.registry_args import MEMBER_CORE_KEYS, check_registration, validate_serving

logger = logging.getLogger(__name__)

_ADVISORY_LOCK_KEY = 0x1E0C_0001  # arbitrary constant: "registry writes" on PostgreSQL
_CHUNK = 1024 * 1024


def code_version() -> str:
    """``git describe --always --dirty --tags`` of the checkout, else the package version.

    ``unknown`` when neither is available. Computed once per process.
    """
    return _describe_code_version()


@functools.lru_cache(maxsize=1)
def _describe_code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if out:
            return out[:64]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"leukemia-portal {version('leukemia-portal')}"[:64]
    except PackageNotFoundError:
        pass
    pyproject = Path(settings.BASE_DIR) / "pyproject.toml"
    try:
        import tomllib

        with open(pyproject, "rb") as fh:
            return f"leukemia-portal {tomllib.load(fh)['project']['version']} (no git)"[:64]
    except (OSError, KeyError, ValueError):
        return "unknown"


# --- Writes ---------------------------------------------------------------------------------


def register_version(
    *,
    name: str = "all-ensemble",
    members: list[Mapping[str, Any]],
    preprocessing: Mapping[str, Any],
    class_names: list[str],
    metrics: Mapping[str, Any] | None = None,
    review_threshold: float | None = None,
    data_fingerprint: str = "",
    code_version: str | None = None,
    notes: str = "",
    is_demo: bool = False,
    extra_files: Mapping[str, str | os.PathLike] | None = None,
    ood: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
    serving: Mapping[str, Any] | None = None,
    activate: bool = False,
    user=None,
) -> ModelVersion:
    """Store an ensemble's files and create its ``ModelVersion`` (a candidate unless ``activate``).

    ``members``: dicts with ``name`` (unique; letters, digits, ``_.-``), ``architecture`` (one of
    ``inference.architectures.ARCHITECTURES``), ``input_size`` and ``path`` (a local ``.keras``
    file); other JSON keys are kept. ``preprocessing`` is resolved with
    ``inference.preprocessing.resolve_config`` and stored complete. ``extra_files`` maps relative
    names (``"plots/confusion.png"``) to local files stored under ``models/v{N}/<name>`` (a name
    without an extension gets the file's own) and recorded in
    ``metrics["artifacts"][name] = {"artifact", "sha256", "bytes", "content_type"}``; string
    entries already in ``metrics["artifacts"]`` are kept (see ``stored_artifacts``).
    ``review_threshold`` (a probability, or None) is the top mean probability below which the
    version's results are flagged for human review; its figures belong in
    ``metrics["review_threshold"]`` (``ml_training.review_threshold``). ``ood``: the
    out-of-domain detector, ``{"path": <local .npz>, **config}`` (``inference.ood``), stored as
    ``models/v{N}/ood.npz`` and recorded in ``ModelVersion.ood`` with its sha256.
    ``calibration``: ``{"temperature": T, ...}`` of the displayed ensemble probability.
    ``serving``: the serving model built from these member files (``{"path": <local .keras>,
    **inference.serving_model.build_serving_file(...)}``), stored as ``models/v{N}/serving.keras``
    and recorded in ``ModelVersion.serving`` with its sha256 and the members' (without one,
    workers load and fuse the members themselves; ``build_serving_model`` adds it later).

    Raises ``ValueError`` (bad arguments, before anything is stored) or the storage/database
    error; in every failure case the files already copied are deleted and no row is created.
    """
    args = check_registration(
        name=name,
        members=members,
        preprocessing=preprocessing,
        class_names=class_names,
        metrics=metrics,
        review_threshold=review_threshold,
        data_fingerprint=data_fingerprint,
        extra_files=extra_files,
        ood=ood,
        calibration=calibration,
        serving=serving,
    )
    if code_version is None:
        code_version = _describe_code_version()
    storage = default_storage
    stored: list[str] = []
    try:
        with transaction.atomic():
            version = _create_row(
                name=name,
                preprocessing=args.preprocessing,
                class_names=args.class_names,
                review_threshold=args.review_threshold,
                data_fingerprint=data_fingerprint or "",
                code_version=(code_version or "")[:64],
                notes=notes or "",
                is_demo=bool(is_demo),
                calibration=args.calibration,
            )
            prefix = f"models/v{version.version}"
            member_rows = [
                _store_member(storage, extra, path, prefix, stored) for extra, path in args.members
            ]
            metrics = _store_extra_files(storage, args.extra_files, args.metrics, prefix, stored)
            if args.ood_path is not None:
                artifact, digest, size = _store(storage, args.ood_path, f"{prefix}/ood.npz")
                stored.append(artifact)
                version.ood = {
                    "artifact": artifact,
                    "sha256": digest,
                    "bytes": size,
                    **args.ood_config,
                }
            version.members = member_rows
            if args.serving_path is not None:
                version.serving = _store_serving(
                    storage, version, args.serving_path, args.serving_config, stored
                )
            version.metrics = metrics
            version.full_clean()
            version.save(update_fields=["members", "metrics", "ood", "serving"])
            if activate:
                version = activate_version(version, user=user)
    except BaseException:
        for artifact in stored:
            try:
                storage.delete(artifact)
            except Exception:  # noqa: BLE001 - cleanup must not hide the original error
                logger.exception("could not delete %s after a failed registration", artifact)
        raise
    logger.info("registered %s with members %s", version, version.member_names)
    return version


def activate_version(version: ModelVersion, *, user=None) -> ModelVersion:
    """Make ``version`` the active one; the previously active version becomes ``retired``.

    Atomic. Re-activating a retired version is allowed (a roll-back). Activating the version that
    is already active changes nothing and sends no signal. Every artifact must exist in storage
    (``ArtifactIntegrityError`` otherwise; checksums are verified when a worker loads them).
    ``signals.version_activated(version=...)`` is sent after the commit. Returns the fresh row.
    """
    storage = default_storage
    with transaction.atomic():
        _lock_registry()
        target = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if target.status == ModelVersion.Status.ACTIVE:
            return target
        for m in target.members:
            if not storage.exists(m["artifact"]):
                raise ArtifactIntegrityError(
                    f"cannot activate {target}: artifact of member {m['name']!r} is missing "
                    f"({m['artifact']})"
                )
        if not target.members:
            raise ArtifactIntegrityError(f"cannot activate {target}: it has no members")
        if target.has_ood_detector and not storage.exists(target.ood["artifact"]):
            raise ArtifactIntegrityError(
                f"cannot activate {target}: its out-of-domain detector is missing "
                f"({target.ood['artifact']})"
            )
        if target.serving and not storage.exists(target.serving["artifact"]):
            raise ArtifactIntegrityError(
                f"cannot activate {target}: its serving model is missing "
                f"({target.serving['artifact']}); manage.py build_serving_model --version "
                f"{target.version} --replace rebuilds it"
            )
        previous = list(
            ModelVersion.objects.select_for_update()
            .filter(status=ModelVersion.Status.ACTIVE)
            .exclude(pk=target.pk)
        )
        for old in previous:
            old.status = ModelVersion.Status.RETIRED
            old.save(update_fields=["status"])
        target.status = ModelVersion.Status.ACTIVE
        target.activated_at = timezone.now()
        target.activated_by = user if user is not None and user.is_authenticated else None
        target.save(update_fields=["status", "activated_at", "activated_by"])
        logger.info(
            "activated %s (retired: %s) by %s",
            target,
            ", ".join(str(v) for v in previous) or "none",
            user,
        )
        transaction.on_commit(
            lambda: signals.version_activated.send(sender=ModelVersion, version=target)
        )
    return target


def retire_version(version: ModelVersion, *, user=None) -> ModelVersion:
    """Retire ``version`` (no-op if already retired). Retiring the active version leaves none
    active: new work then waits (``NoActiveModel``) until another version is activated."""
    with transaction.atomic():
        _lock_registry()
        target = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if target.status != ModelVersion.Status.RETIRED:
            was = target.status
            target.status = ModelVersion.Status.RETIRED
            target.save(update_fields=["status"])
            logger.info("retired %s (was %s) by %s", target, was, user)
    return target


# --- Helpers --------------------------------------------------------------------------------


def attach_serving_model(version: ModelVersion, serving: Mapping[str, Any], *, replace=False):
    """Store a serving model built for an already registered ``version`` (``serving`` as in
    ``register_version``) and record it; the version row, reloaded. A version that has one
    keeps it unless ``replace`` (the old file is deleted once the new one is committed; a worker
    fetching the old file at that moment fails once and recovery retries it). Workers that
    already loaded the version keep their models until they load it again. As with
    ``register_version``, a caller's outer transaction that rolls back later leaves the new
    file orphaned."""
    with transaction.atomic():
        _lock_registry()
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.serving and not replace:
            raise ValueError(
                f"{version} already has a serving model: {version.serving['artifact']}"
            )
        path, config = validate_serving(serving, version.preprocessing)
        old = (version.serving or {}).get("artifact")
        stored: list[str] = []
        try:
            version.serving = _store_serving(default_storage, version, path, config, stored)
            version.save(update_fields=["serving"])
        except BaseException:
            for artifact in stored:
                default_storage.delete(artifact)
            raise
    if old and old != version.serving["artifact"]:
        transaction.on_commit(lambda: default_storage.delete(old))
    logger.info("stored the serving model of %s: %s", version, version.serving["artifact"])
    return version


def _lock_registry() -> None:
    """Serialise registry writes on PostgreSQL (released at the end of the transaction)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])


def _create_row(**fields) -> ModelVersion:
    _lock_registry()
    for _attempt in range(5):
        last = ModelVersion.objects.order_by("-version").values_list("version", flat=True).first()
        row = ModelVersion(version=(last or 0) + 1, **fields)
        try:
            with transaction.atomic():
                row.save(force_insert=True)
            return row
        except IntegrityError:
            if not ModelVersion.objects.filter(version=row.version).exists():
                raise
            logger.warning("version number %s was taken concurrently; retrying", row.version)
    raise IntegrityError("could not allocate a model version number after 5 attempts")


def _store(storage, path: Path, name: str) -> tuple[str, str, int]:
    """Copy ``path`` into ``storage`` as ``name``; the stored name, sha256 and size."""
    digest = sha256_file(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        stored = storage.save(name, File(fh, name=PurePosixPath(name).name))
    stored_size = storage.size(stored)
    if stored_size != size:
        raise ArtifactIntegrityError(
            f"storing {path} as {stored} wrote {stored_size} bytes instead of {size}"
        )
    return stored, digest, size


def _store_member(storage, extra: dict, path: Path, prefix: str, stored: list[str]) -> dict:
    """Store one member's ``.keras`` file; its row in ``ModelVersion.members``."""
    artifact, digest, _ = _store(storage, path, f"{prefix}/{extra['name']}.keras")
    stored.append(artifact)
    return {
        "name": extra["name"],
        "architecture": extra["architecture"],
        "input_size": int(extra["input_size"]),
        "artifact": artifact,
        "sha256": digest,
        **{k: v for k, v in extra.items() if k not in MEMBER_CORE_KEYS},
    }


def _store_serving(storage, version, path: Path, config: dict, stored: list[str]) -> dict:
    """Store a serving model file of ``version``; its ``ModelVersion.serving`` record."""
    artifact, digest, size = _store(storage, path, f"models/v{version.version}/serving.keras")
    stored.append(artifact)
    members = [[m["name"], m["sha256"]] for m in version.members]  # in the fused model's order
    return {"artifact": artifact, "sha256": digest, "bytes": size, "members": members, **config}


def _store_extra_files(storage, extras, metrics: dict, prefix: str, stored: list[str]) -> dict:
    """Store the extra files (plots, ...); ``metrics`` with their ``artifacts`` entries."""
    if not extras:
        return metrics
    artifacts = dict(metrics.get("artifacts") or {})
    for rel, path in extras:
        # A key without an extension ("confusion_matrix") keeps the file's own.
        target = rel if PurePosixPath(rel).suffix else rel + path.suffix
        artifact, digest, size = _store(storage, path, f"{prefix}/{target}")
        stored.append(artifact)
        artifacts[rel] = {
            "artifact": artifact,
            "sha256": digest,
            "bytes": size,
            "content_type": mimetypes.guess_type(target)[0] or "application/octet-stream",
        }
    return {**metrics, "artifacts": artifacts}
