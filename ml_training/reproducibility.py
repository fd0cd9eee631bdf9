"""Do two runs of the same command agree? Same split, same data, same test figures.

With fixed epoch counts, seeded data pipelines and TensorFlow's op determinism, the same
``retrain`` command on the same machine gives bit-identical weights, so the stated tolerance is
tight: every ensemble and member figure within ``METRIC_TOLERANCE`` and the same confusion
matrices. ``manage.py compare_runs RUN_A RUN_B`` applies it to two run folders;
``tests/ml_training/test_pipeline_smoke.py`` applies it to two smoke-profile runs.
"""

from __future__ import annotations

import json
from pathlib import Path

METRIC_TOLERANCE = 1e-6
FIGURES = ("accuracy", "macro_f1", "cohen_kappa", "roc_auc_macro", "ece")


def compare(run_a: Path, run_b: Path, *, tolerance: float = METRIC_TOLERANCE) -> dict:
    """The comparison of two evaluated run folders; ``agree`` says whether they are the same."""
    a, b = _load(run_a), _load(run_b)
    same_split = all(a["split"][k] == b["split"][k] for k in ("train", "val", "test"))
    same_data = a["config"]["data_fingerprint"] == b["config"]["data_fingerprint"]
    same_profile = a["config"]["profile"] == b["config"]["profile"]
    models = ["ensemble", *a["metrics"]["members"]]
    figures, largest, same_confusion = {}, 0.0, True
    for model in models:
        ma, mb = _model(a["metrics"], model), _model(b["metrics"], model)
        if mb is None:
            figures[model] = None
            same_confusion = False
            continue
        row = {}
        for name in FIGURES:
            va, vb = ma.get(name), mb.get(name)
            diff = abs(va - vb) if va is not None and vb is not None else None
            row[name] = {"a": va, "b": vb, "diff": diff}
            if diff is not None:
                largest = max(largest, diff)
        same_confusion &= ma["confusion_matrix"] == mb["confusion_matrix"]
        figures[model] = row
    ood_a, ood_b = a["metrics"].get("out_of_domain"), b["metrics"].get("out_of_domain")
    agree = (
        same_split
        and same_data
        and same_profile
        and same_confusion
        and largest <= tolerance
        and ood_a == ood_b
    )
    return {
        "runs": [str(run_a), str(run_b)],
        "tolerance": tolerance,
        "same_split": same_split,
        "same_data": same_data,
        "same_profile": same_profile,
        "same_confusion_matrices": same_confusion,
        "same_out_of_domain": ood_a == ood_b,
        "largest_difference": largest,
        "figures": figures,
        "seconds": [a["seconds"], b["seconds"]],
        "agree": agree,
    }


def _load(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    metrics_path = run_dir / "eval" / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} has not been evaluated (no eval/metrics.json)")
    state_path = run_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    return {
        "config": json.loads((run_dir / "config.json").read_text()),
        "split": json.loads((run_dir / "split.json").read_text()),
        "metrics": json.loads(metrics_path.read_text()),
        "seconds": state.get("total_seconds_this_session"),
    }


def _model(metrics: dict, model: str) -> dict | None:
    return metrics["ensemble"] if model == "ensemble" else metrics["members"].get(model)
