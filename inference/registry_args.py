"""The checks on ``registry.register_version``'s arguments, all made before anything is stored.

``check_registration`` returns the arguments validated and normalised (a ``Registration``), or
raises ``ValueError`` naming what is wrong. No TensorFlow or Keras here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from inference.preprocessing import resolve_config

_MEMBER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MEMBER_CORE_KEYS = {"name", "architecture", "input_size", "artifact", "sha256", "path"}


@dataclass(frozen=True)
class Registration:
    preprocessing: dict[str, Any]
    class_names: list[str]
    members: list[tuple[dict, Path]]  # (the member's JSON keys without its path, its file)
    extra_files: list[tuple[str, Path]]  # (relative name in the version, local file)
    ood_path: Path | None
    ood_config: dict
    serving_path: Path | None  # the serving model (``inference.serving_model``), if built
    serving_config: dict  # its record's fields beside the file: "config", "folded"
    calibration: dict
    metrics: dict
    review_threshold: float | None


def check_registration(
    *,
    name,
    members,
    preprocessing,
    class_names,
    metrics,
    review_threshold,
    data_fingerprint,
    extra_files,
    ood,
    calibration,
    serving=None,
) -> Registration:
    """Validate every argument of ``register_version`` (see there) before anything is stored."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValueError("name must be a non-empty string of at most 100 characters")
    if len(data_fingerprint or "") > 64:
        raise ValueError("data_fingerprint must be at most 64 characters (e.g. a sha256 hex)")
    preprocessing = resolve_config(preprocessing)
    class_names = validate_class_names(class_names)
    specs = validate_members(members)
    extras = validate_extra_files(extra_files, {extra["name"] for extra, _ in specs})
    ood_path, ood_config = validate_ood(ood)
    serving_path, serving_config = validate_serving(serving, preprocessing)
    metrics = dict(metrics or {})
    ensure_json(metrics, "metrics")
    return Registration(
        preprocessing=preprocessing,
        class_names=class_names,
        members=specs,
        extra_files=extras,
        ood_path=ood_path,
        ood_config=ood_config,
        serving_path=serving_path,
        serving_config=serving_config,
        calibration=validate_calibration(calibration),
        metrics=metrics,
        review_threshold=validate_threshold(review_threshold),
    )


def validate_members(members) -> list[tuple[dict, Path]]:
    from inference.architectures import validate_member_spec

    if not members:
        raise ValueError("an ensemble needs at least one member")
    specs = []
    seen: set[str] = set()
    for i, member in enumerate(members):
        if not isinstance(member, Mapping):
            raise ValueError(f"member #{i} must be a dict, got {type(member).__name__}")
        missing = {"name", "architecture", "input_size", "path"} - set(member)
        if missing:
            raise ValueError(f"member #{i} lacks {sorted(missing)}")
        mname = member["name"]
        if not isinstance(mname, str) or not _MEMBER_NAME_RE.match(mname):
            raise ValueError(f"member name {mname!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if mname in seen:
            raise ValueError(f"member name {mname!r} is used twice")
        seen.add(mname)
        validate_member_spec(member["architecture"], member["input_size"])
        path = Path(member["path"])
        if not path.is_file():
            raise ValueError(f"member {mname!r}: no file at {path}")
        extra = {k: v for k, v in member.items() if k not in {"path", "artifact", "sha256"}}
        ensure_json(extra, f"member {mname!r}")
        specs.append((extra, path))
    return specs


def validate_extra_files(extra_files, member_names: set[str]) -> list[tuple[str, Path]]:
    extras: list[tuple[str, Path]] = []
    for rel, local in (extra_files or {}).items():
        rel_path = PurePosixPath(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts or not rel_path.parts or "\\" in rel:
            raise ValueError(f"extra file name {rel!r} must be a relative path inside the version")
        if rel_path.suffix == ".keras" and rel_path.stem in member_names:
            raise ValueError(f"extra file name {rel!r} clashes with a member artifact")
        if not Path(local).is_file():
            raise ValueError(f"extra file {rel!r}: no file at {local}")
        extras.append((rel, Path(local)))
    return extras


def validate_class_names(class_names) -> list[str]:
    if isinstance(class_names, str) or not class_names:
        raise ValueError("class_names must be a non-empty list of strings")
    names = list(class_names)
    if not all(isinstance(c, str) and c.strip() for c in names):
        raise ValueError(f"class_names must be non-empty strings, got {names!r}")
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise ValueError(f"class_names must be unique; repeated: {duplicates}")
    if len(names) < 2:
        raise ValueError("class_names needs at least two classes")
    return names


def validate_ood(ood) -> tuple[Path | None, dict]:
    if not ood:
        return None, {}
    if not isinstance(ood, Mapping) or "path" not in ood:
        raise ValueError("ood must be a dict with the detector file's 'path'")
    path = Path(ood["path"])
    if not path.is_file():
        raise ValueError(f"out-of-domain detector: no file at {path}")
    config = {k: v for k, v in ood.items() if k not in {"path", "artifact", "sha256", "bytes"}}
    ensure_json(config, "ood")
    return path, config


def validate_serving(serving, preprocessing: dict) -> tuple[Path | None, dict]:
    """The serving model's file and record fields; it must bake in ``preprocessing``."""
    from inference.serving_model import baked_config

    if not serving:
        return None, {}
    if not isinstance(serving, Mapping) or "path" not in serving:
        raise ValueError("serving must be a dict with the serving model file's 'path'")
    path = Path(serving["path"])
    if not path.is_file():
        raise ValueError(f"serving model: no file at {path}")
    if serving.get("config") != baked_config(preprocessing):
        raise ValueError(
            f"the serving model bakes in {serving.get('config')}, the version's preprocessing "
            f"is {baked_config(preprocessing)}"
        )
    config = {k: v for k, v in serving.items() if k in {"config", "folded"}}
    ensure_json(config, "serving")
    return path, config


def validate_calibration(calibration) -> dict:
    if not calibration:
        return {}
    if not isinstance(calibration, Mapping):
        raise ValueError("calibration must be a dict with a 'temperature'")
    t = calibration.get("temperature")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.01 <= float(t) <= 100:
        raise ValueError(f"calibration temperature must be a number in [0.01, 100], got {t!r}")
    out = dict(calibration)
    ensure_json(out, "calibration")
    return out


def validate_threshold(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"review_threshold must be a number or None, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:  # also refuses NaN
        raise ValueError(f"review_threshold must be a probability in [0, 1], got {value!r}")
    return float(value)


def ensure_json(value, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from None
