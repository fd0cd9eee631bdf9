"""Training profiles: versioned JSON files in ``ml_training/profiles/`` (paper, cpu, smoke).

A profile is a plain dict::

    {
      "name": "cpu",
      "description": "...",
      "preprocessing": {...},            # inference.preprocessing config shared by all members
      "split": {"val_fraction": 0.15, "test_fraction": 0.15},
      "augment": {...},                  # ml_training.augment.DEFAULT_AUGMENT keys
      "train": {...},                    # defaults for every member (see TRAIN_DEFAULTS)
      "members": [{"name", "architecture", "input_size", "epochs", ...overrides of "train"}],
      "eval": {"bootstrap": 1000, "batch_size": 32}
    }

The version's input is ``preprocessing["input_size"]`` (S); a member with another
``input_size`` is fed through a ``keras.layers.Resizing`` from S, in training exactly as the
fused serving model does (``inference.fused.build_fused_model``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

TRAIN_DEFAULTS = {
    "batch_size": 32,
    "epochs": 5,
    "optimizer": "adamw",  # adamw | adam | sgd
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 0.5,  # linear warm-up, then cosine decay to lr * min_lr_ratio
    "min_lr_ratio": 0.02,
    "schedule": "cosine",  # cosine | constant
    "label_smoothing": 0.0,
    "clipnorm": 1.0,
    "dropout": 0.3,
    "bn_momentum": 0.9,
    "patience": 3,  # epochs without a better validation macro-F1 before stopping
    "min_epochs": 1,
    # An opt-in safety net, not a plan: no epoch starts that would overrun this many minutes.
    # A run in which it fires is marked not reproducible (metrics, model card).
    "max_minutes": None,
    "steps_per_epoch": None,  # default: one balanced epoch (classes x largest class / batch)
    "train_fraction": 1.0,  # use a class-stratified subset of the training split (quick checks)
    "augment": True,
    # Train on random train_crop x train_crop windows of the member's input (served the whole
    # input): cells at the serving scale for the cost of a smaller image. None: whole image.
    "train_crop": None,
    # "mixed_bfloat16" trains ~1.6x faster on CPUs with AVX512-BF16 (measured: ResNet50 at 96 px,
    # 15.1 → 24.7 img/s); the saved member is always rebuilt in float32 for serving.
    "precision": "float32",
    "bn_refresh_batches": 16,
    "run_eagerly": False,
    # Add log(class frequency in the training split) to the softmax bias after training, so a
    # member trained on balanced batches predicts with the data's own class prior; kept only
    # when it does not lower the member's validation macro-F1.
    "prior_correction": False,
    # Fit a temperature and a class bias on the validation split (minimum NLL) and fold them
    # into the softmax layer (ml_training.calibration); kept only when it does not lower the
    # member's validation macro-F1.
    "calibrate": False,
    # Fine-tuning from ImageNet weights (ml_training.fine_tuning, the keras-io recipe): train the
    # head on a frozen backbone for this many epochs, then unfreeze the top fine_tune_layers of
    # the backbone (BatchNorm layers stay frozen) at fine_tune_learning_rate. 0: no freezing.
    "frozen_epochs": 0,
    "fine_tune_layers": 20,
    "fine_tune_learning_rate": 1e-5,
}

MEMBER_KEYS = {"name", "architecture", "input_size", *TRAIN_DEFAULTS}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path) -> dict:
    """Load a profile by name (``cpu``) or by path to a JSON file; validate it."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no training profile {name_or_path!r}; available: {available_profiles()}"
        )
    profile = json.loads(path.read_text())
    profile.setdefault("name", path.stem)
    return resolve_profile(profile)


def resolve_profile(profile: dict) -> dict:
    """Fill defaults into every member and check the keys. Returns a new dict."""
    from inference.architectures import validate_member_spec
    from inference.preprocessing import resolve_config

    out = copy.deepcopy(profile)
    out["preprocessing"] = resolve_config(out.get("preprocessing"))
    out.setdefault("split", {})
    out["split"] = {"val_fraction": 0.15, "test_fraction": 0.15, **out["split"]}
    out.setdefault("augment", {})
    out.setdefault("eval", {})
    out["eval"] = {"bootstrap": 1000, "batch_size": 32, **out["eval"]}
    train = {**TRAIN_DEFAULTS, **out.get("train", {})}
    unknown = set(out.get("train", {})) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown train key(s) {sorted(unknown)}")
    out["train"] = train
    members = []
    for m in out.get("members", []):
        unknown = set(m) - MEMBER_KEYS
        if unknown:
            raise ValueError(f"member {m.get('name')}: unknown key(s) {sorted(unknown)}")
        member = {**train, **m}
        member.setdefault("name", member["architecture"])
        member.setdefault("input_size", out["preprocessing"]["input_size"])
        validate_member_spec(member["architecture"], int(member["input_size"]))
        if member["train_crop"] is not None:
            crop = member["train_crop"]
            validate_member_spec(member["architecture"], crop)
            if crop > int(member["input_size"]):
                raise ValueError(
                    f"member {member['name']}: train_crop {crop} is larger than its "
                    f"input_size {member['input_size']}"
                )
        frozen = int(member["frozen_epochs"])
        if frozen and not 0 < frozen < int(member["epochs"]):
            raise ValueError(
                f"member {member['name']}: frozen_epochs {frozen} must be below its "
                f"{member['epochs']} epochs (the rest fine-tune)"
            )
        members.append(member)
    if not members:
        raise ValueError("a profile needs at least one member")
    names = [m["name"] for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"member names must be unique, got {names}")
    out["members"] = members
    return out
