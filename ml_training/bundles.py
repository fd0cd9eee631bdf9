"""Bundles: a folder with ``bundle.json`` and the files it names (member ``.keras`` files, the
out-of-domain detector, the calibration); a run folder is one. Writing a run's bundle,
registering a run, and validating and registering a bundle trained elsewhere.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from inference.checksums import sha256_file
from inference.serving_model import built_serving_file
from ml_training import data as data_mod
from ml_training import evaluate as ev
from ml_training import review_threshold, train

logger = logging.getLogger("ml_training")

BUNDLE_FORMAT = "leukemia-portal/ensemble-bundle/v1"

OOD_FILE = "ood.npz"


CALIBRATION_FILE = "calibration.json"


def _run_json(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def write_bundle(ctx: train.RunContext, metrics: dict | None) -> Path:
    """``bundle.json``: everything ``register_model`` needs to register this run folder."""
    bundle = {
        "format": BUNDLE_FORMAT,
        "name": "all-ensemble",
        "class_names": list(data_mod.CLASS_NAMES),
        "preprocessing": ctx.profile["preprocessing"],
        "members": [
            {
                "name": m["name"],
                "architecture": m["architecture"],
                "input_size": m["input_size"],
                "file": f"members/{m['name']}.keras",
                "sha256": sha256_file(m["path"]),
            }
            for m in train.member_specs(ctx)
        ],
        "metrics": "eval/metrics.json" if metrics is not None else None,
        "data_fingerprint": ctx.config["data_fingerprint"],
        "code_version": ctx.config["code_version"],
        "profile": ctx.profile["name"],
        "seed": ctx.config["seed"],
        "synthetic": bool(_is_synthetic_root(ctx.manifest.root)),
    }
    bundle["calibration"] = _run_json(ctx.run_dir, CALIBRATION_FILE)
    if (ctx.run_dir / OOD_FILE).is_file():
        config = json.loads((ctx.run_dir / "ood.json").read_text())
        bundle["ood"] = {"file": OOD_FILE, "sha256": sha256_file(ctx.run_dir / OOD_FILE), **config}
    path = ctx.run_dir / "bundle.json"
    path.write_text(json.dumps(bundle, indent=1))
    return path


def _is_synthetic_root(root: str) -> bool:
    from ml_training.synthetic import is_synthetic

    return is_synthetic(Path(root)) or is_synthetic(Path(root).parent)


def _plot_files(folder: Path, metrics: dict) -> dict[str, Path]:
    files = {}
    for name in sorted(set((metrics or {}).get("plots", {}).values())):
        path = folder / name
        if path.is_file():
            files[f"plots/{name}"] = path
    for extra in ("metrics.json", "report.md"):
        if (folder / extra).is_file():
            files[f"eval/{extra}"] = folder / extra
    return files


def registry_metrics(metrics: dict) -> dict:
    """The metrics stored on the ModelVersion: plots point at the stored names (``plots/...``),
    and an undefined figure (NaN, e.g. the ROC AUC of a class absent from a subset) is null,
    since JSON, and so PostgreSQL's jsonb, has no NaN."""
    out = _finite(json.loads(json.dumps(metrics, default=ev._json_default)))
    out["plots"] = {k: f"plots/{v}" for k, v in metrics.get("plots", {}).items()}
    return out


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def register_run(ctx, metrics, *, activate=False, is_demo=False, notes="", user=None):
    from inference.registry import register_version

    synthetic = _is_synthetic_root(ctx.manifest.root)
    if synthetic and not is_demo:
        raise ValueError("a model trained on synthetic smears must be registered as DEMO")
    note = (
        f"Trained by ml_training (profile {ctx.profile['name']}, seed {ctx.config['seed']}) on "
        f"{ctx.manifest.root}; run folder {ctx.run_dir}." + (f" {notes}" if notes else "")
    )
    if is_demo:
        note = (
            "DEMO: trained on SYNTHETIC smears (ml_training.synthetic); predictions carry no "
            "medical meaning. " + note
        )
    members = []
    for m in train.member_specs(ctx):
        info = json.loads(ctx.member_info_path(m["name"]).read_text())
        members.append(
            {
                **m,
                "best_epoch": info.get("best_epoch"),
                "val_macro_f1": info.get("val", {}).get("macro_f1"),
            }
        )
    preprocessing = ctx.profile["preprocessing"]
    class_names = list(data_mod.CLASS_NAMES)
    with built_serving_file(members, preprocessing, class_names) as serving:
        return register_version(
            name="all-ensemble-demo" if is_demo else "all-ensemble",
            members=members,
            preprocessing=preprocessing,
            class_names=class_names,
            metrics=registry_metrics(metrics),
            review_threshold=review_threshold.threshold_value(metrics),
            data_fingerprint=ctx.config["data_fingerprint"],
            code_version=ctx.config["code_version"],
            notes=note,
            is_demo=is_demo,
            extra_files=_plot_files(ctx.run_dir / "eval", metrics),
            ood=_run_ood(ctx.run_dir),
            calibration=_run_json(ctx.run_dir, CALIBRATION_FILE),
            serving=serving,
            activate=activate,
            user=user,
        )


def _run_ood(folder: Path) -> dict | None:
    if not (folder / OOD_FILE).is_file():
        return None
    return {"path": folder / OOD_FILE, **json.loads((folder / "ood.json").read_text())}


# --- Bundles trained elsewhere ----------------------------------------------------------------


def validate_bundle(path: Path) -> dict:
    """Check a bundle folder (or its bundle.json): format, files, sha256, loadable members with
    the declared input sizes and class count. Returns the bundle dict with absolute paths."""
    import keras

    from inference.architectures import validate_member_spec
    from inference.exceptions import ArtifactIntegrityError
    from inference.member_files import check_member, load_member_file
    from inference.preprocessing import resolve_config

    path = Path(path)
    bundle_path = path / "bundle.json" if path.is_dir() else path
    if not bundle_path.is_file():
        raise ValueError(f"no bundle.json at {path}")
    folder = bundle_path.parent
    bundle = json.loads(bundle_path.read_text())
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(
            f"unknown bundle format {bundle.get('format')!r}; expected {BUNDLE_FORMAT}"
        )
    class_names = bundle.get("class_names")
    if list(class_names or []) != list(data_mod.CLASS_NAMES):
        raise ValueError(f"bundle classes {class_names} differ from {data_mod.CLASS_NAMES}")
    bundle["preprocessing"] = resolve_config(bundle.get("preprocessing"))
    if not bundle.get("members"):
        raise ValueError("bundle has no members")
    for m in bundle["members"]:
        validate_member_spec(m["architecture"], int(m["input_size"]))
        file = (folder / m["file"]).resolve()
        if folder.resolve() not in file.parents:
            raise ValueError(f"member {m['name']}: file {m['file']} is outside the bundle")
        if not file.is_file():
            raise ValueError(f"member {m['name']}: missing file {m['file']}")
        digest = sha256_file(file)
        if m.get("sha256") and digest != m["sha256"]:
            raise ValueError(f"member {m['name']}: sha256 {digest} != bundle's {m['sha256']}")
        model = load_member_file(file)
        try:
            check_member(model, m, class_names)
        except ArtifactIntegrityError as exc:
            raise ValueError(str(exc)) from exc
        probe = np.zeros((1, int(m["input_size"]), int(m["input_size"]), 3), np.float32)
        out = np.asarray(model(probe, training=False))
        if out.shape != (1, len(class_names)) or not np.allclose(out.sum(), 1.0, atol=1e-3):
            raise ValueError(f"member {m['name']}: output {out.shape} is not a probability vector")
        m["path"] = file
        m["sha256"] = digest
        del model
        keras.backend.clear_session()
    bundle["_ood"] = _validate_bundle_ood(folder, bundle)
    metrics = {}
    if bundle.get("metrics") and (folder / bundle["metrics"]).is_file():
        metrics = json.loads((folder / bundle["metrics"]).read_text())
    bundle["_metrics"] = metrics
    bundle["_folder"] = folder
    return bundle


def _validate_bundle_ood(folder: Path, bundle: dict) -> dict | None:
    """The bundle's out-of-domain detector for ``register_version`` (None without one)."""
    from inference.ood import OODDetector

    entry = bundle.get("ood")
    if not entry:
        return None
    file = (folder / entry.get("file", "")).resolve()
    if folder.resolve() not in file.parents or not file.is_file():
        raise ValueError(f"out-of-domain detector: missing file {entry.get('file')!r}")
    digest = sha256_file(file)
    if entry.get("sha256") and digest != entry["sha256"]:
        raise ValueError(f"out-of-domain detector: sha256 {digest} != bundle's {entry['sha256']}")
    detector = OODDetector.from_file(file)
    names = [m["name"] for m in bundle["members"]]
    if detector.member_names != names:
        raise ValueError(
            f"out-of-domain detector fitted on members {detector.member_names}, bundle has {names}"
        )
    return {"path": file, **{k: v for k, v in entry.items() if k not in {"file", "sha256"}}}


def activation_guard(metrics, *, activate: bool, is_demo: bool, notes: str) -> tuple[bool, str]:
    """``(activate, notes)`` for registering an ensemble evaluated as ``metrics``: one with a
    collapsed member (one class for at least 90% of its test predictions) silently votes with
    four members, so it is never activated automatically but registered as a candidate to
    inspect, with a note saying why. ``retrain`` and ``register_model`` alike."""
    members = (metrics or {}).get("members", {})
    collapsed = [name for name, m in members.items() if m.get("collapsed")]
    if collapsed:
        logger.warning("collapsed members on the test split (one class for >= 90%%): %s", collapsed)
    if activate and collapsed and not is_demo:
        logger.warning("not activating: %s collapsed; registered as a candidate", collapsed)
        return False, (notes + " " if notes else "") + f"NOT ACTIVATED: collapsed {collapsed}."
    return activate, notes


def register_bundle(path: Path, *, activate: bool = False, notes: str = "", user=None):
    from inference.registry import register_version

    bundle = validate_bundle(path)
    metrics = bundle["_metrics"]
    is_demo = bool(bundle.get("synthetic"))
    note = f"Registered from bundle {bundle['_folder']} (profile {bundle.get('profile')})." + (
        f" {notes}" if notes else ""
    )
    if is_demo:
        note = "DEMO: trained on SYNTHETIC smears; predictions carry no medical meaning. " + note
    activate, note = activation_guard(metrics, activate=activate, is_demo=is_demo, notes=note)
    members = [
        {
            "name": m["name"],
            "architecture": m["architecture"],
            "input_size": int(m["input_size"]),
            "path": m["path"],
        }
        for m in bundle["members"]
    ]
    with built_serving_file(members, bundle["preprocessing"], bundle["class_names"]) as serving:
        return register_version(
            name=bundle.get("name") or "all-ensemble",
            members=members,
            preprocessing=bundle["preprocessing"],
            class_names=bundle["class_names"],
            metrics=registry_metrics(metrics) if metrics else {},
            review_threshold=review_threshold.threshold_value(metrics),
            data_fingerprint=bundle.get("data_fingerprint", "")[:64],
            code_version=bundle.get("code_version"),
            notes=note,
            is_demo=is_demo,
            extra_files=_plot_files(bundle["_folder"] / "eval", metrics) if metrics else None,
            ood=bundle["_ood"],
            calibration=bundle.get("calibration"),
            serving=serving,
            activate=activate,
            user=user,
        )
