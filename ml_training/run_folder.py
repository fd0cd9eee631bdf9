"""The run folder of a training run: its config, manifest, split and state, made once and read
back for ``--resume`` (layout: ``ml_training.train``), and the log file beside it."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ml_training import data as data_mod
from ml_training.profiles import load_profile

logger = logging.getLogger("ml_training")


class TrainingInterrupted(Exception):
    """Ctrl-C during training: finished members are kept; ``--resume run_dir`` continues."""

    def __init__(self, run_dir: Path):
        super().__init__(f"training interrupted; resume with --resume {run_dir}")
        self.run_dir = run_dir


@dataclass
class RunContext:
    run_dir: Path
    config: dict
    manifest: data_mod.Manifest
    split: data_mod.Split

    @property
    def profile(self) -> dict:
        return self.config["profile"]

    @property
    def members_dir(self) -> Path:
        return self.run_dir / "members"

    def member_path(self, name: str) -> Path:
        return self.members_dir / f"{name}.keras"

    def member_info_path(self, name: str) -> Path:
        return self.members_dir / f"{name}.json"

    def member_done(self, name: str) -> bool:
        info = self.member_info_path(name)
        if not (info.is_file() and self.member_path(name).is_file()):
            return False
        return json.loads(info.read_text()).get("status") == "done"

    def write_state(self, status: str, **extra) -> None:
        state_path = self.run_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        state.update(extra)
        state["status"] = status
        state["updated_at"] = _now()
        state.setdefault("history", []).append({"status": status, "at": state["updated_at"]})
        state_path.write_text(json.dumps(state, indent=1))

    def read_state(self) -> dict:
        path = self.run_dir / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_run_dir(profile_name: str) -> Path:
    from django.conf import settings

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(settings.VAR_DIR) / "runs" / f"{stamp}-{profile_name}"


def machine_info() -> dict:
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def attach_log_file(run_dir: Path) -> logging.Handler:
    """Log to ``run_dir/train.log`` (once: a nested call returns a handler that does nothing)."""
    target = str((run_dir / "train.log").resolve())
    if any(getattr(h, "baseFilename", None) == target for h in logger.handlers):
        return logging.NullHandler()
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def prepare_run(
    *,
    data_dir: Path,
    profile: str | Path,
    seed: int = 42,
    run_dir: Path | None = None,
    weights_dir: Path | None = None,
    cv_folds: int | None = None,
    cv_fold: int | None = None,
) -> RunContext:
    """Create a run folder: resolved config, manifest (deduplicated) and split.

    ``cv_folds``/``cv_fold`` make the test split one fold of a stratified group k-fold
    (``data.split_manifest``); ``manage.py cv_report`` summarises the runs of all folds.
    """
    from inference.registry import code_version

    data_mod.check_cv(cv_folds, cv_fold)
    prof = load_profile(profile)
    run_dir = Path(run_dir) if run_dir else default_run_dir(prof["name"])
    if (run_dir / "config.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; use --resume to continue it")
    run_dir.mkdir(parents=True, exist_ok=True)
    if weights_dir is not None:
        check_weights_dir(prof, weights_dir)
    t0 = time.time()
    manifest = data_mod.build_manifest(data_dir)
    split = data_mod.split_manifest(
        manifest,
        seed=seed,
        val_fraction=prof["split"]["val_fraction"],
        test_fraction=prof["split"]["test_fraction"],
        cv_folds=cv_folds,
        cv_fold=cv_fold,
    )
    manifest.save(run_dir)
    split.save(run_dir, manifest)
    config = {
        "profile": prof,
        "seed": seed,
        "data_dir": str(Path(data_dir).resolve()),
        "data_root": manifest.root,
        "weights_dir": str(Path(weights_dir).resolve()) if weights_dir else None,
        "data_fingerprint": manifest.fingerprint(),
        "cv": {"folds": cv_folds, "fold": cv_fold} if cv_folds else None,
        "code_version": code_version(),
        "created_at": _now(),
        "manifest_seconds": round(time.time() - t0, 2),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    ctx = RunContext(run_dir, config, manifest, split)
    ctx.write_state("prepared", started_at=config["created_at"])
    return ctx


def open_run(run_dir: Path) -> RunContext:
    """Reopen an existing run folder (for --resume and for evaluation)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    config = json.loads(config_path.read_text())
    manifest = data_mod.Manifest.load(run_dir)
    split = data_mod.Split.load(run_dir, manifest)
    return RunContext(run_dir, config, manifest, split)


def check_weights_dir(profile: dict, weights_dir: Path) -> None:
    """Fail before any training when ImageNet weights were asked for but are not on disk."""
    from inference.architectures import imagenet_weights_path

    if not Path(weights_dir).is_dir():
        raise FileNotFoundError(f"--weights-dir {weights_dir} is not a folder")
    for m in profile["members"]:
        imagenet_weights_path(m["architecture"], int(m["input_size"]), weights_dir)


def member_specs(ctx: RunContext) -> list[dict]:
    """The members of a trained run, as ``register_version(members=...)`` takes them."""
    return [
        {
            "name": m["name"],
            "architecture": m["architecture"],
            "input_size": int(m["input_size"]),
            "path": ctx.member_path(m["name"]),
        }
        for m in ctx.profile["members"]
    ]
