"""Loading a registered version's files for the engine (``inference.engine``): its serving
model or its members, and its out-of-domain detector; each sha256-verified and checked against
the version, with the seconds each step took (logged, and reported by ``bench_inference``).

Imports Keras: only the worker, training and evaluation import this module.
"""

from __future__ import annotations

import time
from typing import Any

import keras

from inference import serving_model
from inference.artifacts import ood_local_path
from inference.exceptions import ArtifactIntegrityError
from inference.member_files import check_member, load_member_file
from inference.models import ModelVersion
from inference.ood import OODDetector


def load_members(version: ModelVersion) -> tuple[list[keras.Model], dict[str, Any]]:
    """Every member of ``version``, checked; the seconds of the checksums and of each member."""
    from inference.artifacts import artifact_local_path

    # Every checksum first: a bad artifact is reported before minutes of loading.
    t0 = time.perf_counter()
    paths = [artifact_local_path(version, member) for member in version.members]
    seconds: dict[str, Any] = {"source": "members", "verify_s": time.perf_counter() - t0}
    seconds["members_s"], models = {}, []
    for member, path in zip(version.members, paths, strict=True):
        t0 = time.perf_counter()
        try:
            model = load_member_file(path)
        except Exception as exc:  # noqa: BLE001 - any load failure is an artifact problem
            raise ArtifactIntegrityError(
                f"member {member['name']!r} of {version} could not be loaded from "
                f"{member['artifact']}: {exc}"
            ) from exc
        check_member(model, member, version.class_names, f" of {version}")
        models.append(model)
        seconds["members_s"][member["name"]] = time.perf_counter() - t0
    return models, seconds


def load_serving_model(version: ModelVersion):
    """The version's serving model and its members, checked; the seconds of each step."""
    from inference.artifacts import serving_local_path

    t0 = time.perf_counter()
    serving_model.check_serving_record(version)
    path = serving_local_path(version)
    seconds: dict[str, Any] = {"source": "serving model", "verify_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    try:
        fused, models = serving_model.load_serving_file(path, version.member_names)
    except Exception as exc:  # noqa: BLE001 - any load failure is an artifact problem
        raise ArtifactIntegrityError(
            f"the serving model of {version} could not be loaded from "
            f"{version.serving['artifact']}: {exc}"
        ) from exc
    for model, member in zip(models, version.members, strict=True):
        check_member(model, member, version.class_names, f" of {version}")
    seconds["serving_s"] = time.perf_counter() - t0
    return fused, models, seconds


def rounded(seconds: dict) -> dict:
    return {
        k: rounded(v) if isinstance(v, dict) else v if isinstance(v, str) else round(float(v), 2)
        for k, v in seconds.items()
    }


def load_ood(version: ModelVersion) -> OODDetector | None:
    """The version's out-of-domain detector (sha256-verified), or None without one."""
    path = ood_local_path(version)
    if path is None:
        return None
    try:
        return OODDetector.from_file(path, config=version.ood)
    except ValueError as exc:
        raise ArtifactIntegrityError(
            f"the out-of-domain detector of {version} could not be loaded: {exc}"
        ) from exc
