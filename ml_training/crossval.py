"""Summarise a stratified group k-fold cross-validation: one run folder per test fold.

``manage.py retrain --cv-folds K --cv-fold I --no-register`` trains and evaluates fold I; the K
runs (same data, seed and profile) test every image exactly once. ``summarise`` checks that the
run folders belong together and reports, per model, the mean and sample standard deviation of
the per-fold scores, which says how much a single split's figure can move.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

SCORES = ("accuracy", "macro_f1", "cohen_kappa", "roc_auc_macro", "ece")


def load_fold(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    config_path, metrics_path = run_dir / "config.json", run_dir / "eval" / "metrics.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} has not been evaluated yet (no eval/metrics.json)")
    config = json.loads(config_path.read_text())
    if not config.get("cv"):
        raise ValueError(f"{run_dir} is not a cross-validation run (retrain --cv-folds/--cv-fold)")
    return {
        "run_dir": str(run_dir),
        "config": config,
        "metrics": json.loads(metrics_path.read_text()),
    }


def summarise(run_dirs: list[Path]) -> dict:
    """Per-fold and mean / SD scores of the voted ensemble and every member.

    Raises ValueError when the runs differ in data, seed, profile or number of folds, or when
    a fold appears twice.
    """
    if not run_dirs:
        raise ValueError("give the run folders of the folds")
    folds = sorted((load_fold(d) for d in run_dirs), key=lambda f: f["config"]["cv"]["fold"])
    first = folds[0]["config"]
    for key, what in (
        ("data_fingerprint", "data"),
        ("seed", "seed"),
        (("profile", "name"), "profile"),
        (("cv", "folds"), "number of folds"),
    ):
        values = {_get(f["config"], key) for f in folds}
        if len(values) != 1:
            raise ValueError(f"the runs differ in their {what}: {sorted(map(str, values))}")
    if len({_profile_settings(f) for f in folds}) != 1:
        # Same name, other epochs, sizes or precision: a fold of an older profile.
        raise ValueError(
            "the runs differ in their profile settings (same profile name, other content): "
            "run the older folds again with the current profile"
        )
    numbers = [f["config"]["cv"]["fold"] for f in folds]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"a fold appears more than once: {numbers}")
    k = first["cv"]["folds"]
    models = ["ensemble", *folds[0]["metrics"]["members"]]
    table = {}
    for model in models:
        per_fold = [_model_scores(f["metrics"], model) for f in folds]
        table[model] = {
            "per_fold": per_fold,
            "mean": {s: statistics.fmean(p[s] for p in per_fold) for s in SCORES},
            "sd": {
                s: statistics.stdev([p[s] for p in per_fold]) if len(per_fold) > 1 else None
                for s in SCORES
            },
        }
    return {
        "folds": k,
        "folds_present": numbers,
        "complete": sorted(numbers) == list(range(1, k + 1)),
        "seed": first["seed"],
        "profile": first["profile"]["name"],
        "data_fingerprint": first["data_fingerprint"],
        "test_images": [f["metrics"]["test_set"]["images"] for f in folds],
        "runs": [f["run_dir"] for f in folds],
        "models": table,
    }


def report_markdown(summary: dict) -> str:
    k, present = summary["folds"], summary["folds_present"]
    lines = [
        f"# Cross-validation: profile `{summary['profile']}`, seed {summary['seed']}, {k} folds",
        "",
        f"Folds evaluated: {present} ({sum(summary['test_images'])} test images)"
        + ("" if summary["complete"] else f" — INCOMPLETE: {k} folds expected"),
        "",
        "| Model | " + " | ".join(f"fold {n} macro-F1" for n in present) + " | mean ± SD |",
        "|---" * (len(present) + 2) + "|",
    ]
    for model, row in summary["models"].items():
        name = "**Voted ensemble**" if model == "ensemble" else model
        cells = " | ".join(f"{p['macro_f1']:.4f}" for p in row["per_fold"])
        sd = row["sd"]["macro_f1"]
        spread = f" ± {sd:.4f}" if sd is not None else ""
        lines.append(f"| {name} | {cells} | {row['mean']['macro_f1']:.4f}{spread} |")
    ens = summary["models"]["ensemble"]["mean"]
    lines += [
        "",
        f"Voted ensemble, mean over folds: accuracy {ens['accuracy']:.4f}, kappa "
        f"{ens['cohen_kappa']:.4f}, ROC AUC {ens['roc_auc_macro']:.4f}, ECE {ens['ece']:.4f}.",
    ]
    return "\n".join(lines) + "\n"


def _model_scores(metrics: dict, model: str) -> dict:
    m = metrics["ensemble"] if model == "ensemble" else metrics["members"][model]
    return {s: float(m[s]) for s in SCORES}


def _profile_settings(fold: dict) -> str:
    """What of a run's profile decides its weights: its members' resolved settings.

    The description and the ``train`` block (defaults already merged into every member) are
    left out, and each member's ``steps_per_epoch`` is the number of steps its run recorded:
    a profile that fixes the steps at the number a balanced epoch of the fold gives trains
    exactly as one that leaves them to that default.
    """
    used = fold["metrics"].get("extra", {}).get("training", {}).get("members", {})
    profile = {
        k: v for k, v in fold["config"]["profile"].items() if k not in ("description", "train")
    }
    members = []
    for member in profile.get("members", []):
        steps = used.get(member.get("name"), {}).get("steps_per_epoch")
        members.append({**member, "steps_per_epoch": steps or member.get("steps_per_epoch")})
    profile["members"] = members
    return json.dumps(profile, sort_keys=True)


def _get(config: dict, key):
    if isinstance(key, tuple):
        value = config
        for part in key:
            value = value[part]
        return value
    return config[key]
