"""Evaluate an ensemble through the serving path and report every member and the vote.

``ml_training.pipeline`` runs the images through ``inference.engine.EnsembleEngine.classify`` —
the code the Celery worker uses — and ``evaluate_results`` scores each member (its own
probabilities, arg-max) and the voted ensemble (the vote's label; the members' mean
probabilities for ROC AUC and calibration).

Metrics of one model (``score``): accuracy, per-class precision / recall / F1 / support, macro
and weighted F1, Cohen's kappa, one-vs-rest ROC AUC (per class and macro), the expected
calibration error (15 equal-width bins of the top-class confidence) with its reliability table,
the confusion matrix, the predicted-class histogram and a ``collapsed`` flag (one class for at
least 90% of the images), and 95% percentile-bootstrap confidence intervals (resampling images)
for accuracy, macro-F1, weighted F1, kappa and macro AUC.

The metrics JSON (also stored on the ModelVersion) has this shape::

    {
      "schema": "leukemia-portal/metrics/v1",
      "ensemble": {<score>, "agreement": {...}},
      "members": {"ResNet50": {<score>}, ...},
      "test_set": {"name", "images", "per_class", "source", "data_dir", "fingerprint",
                   "inference_seconds", "images_per_second", ...},
      "plots": {"confusion_matrix": "plots/confusion_ensemble.png",
                "roc": "plots/roc_ensemble.png", "reliability": "plots/reliability_ensemble.png",
                "confusion_matrix_<member lower-case>": "plots/confusion_<member>.png", ...},
      "artifacts": {"plots/confusion_ensemble.png": {"artifact", "sha256", "bytes",
                    "content_type"}, ...},  # filled by inference.registry.register_version
      "review_threshold": {"value", "target_accuracy", "accuracy_above", ...},  # chosen on
                    # the VALIDATION split by ml_training.review_threshold (retrain only)
      "extra": {"segmented": {<same shape, Segmented twins of the test images>},
                "segmentation_iou": {...}, "manifest": {...}, "split": {...},
                "training": {...}}
    }

``<score>`` = {"accuracy", "macro_f1", "weighted_f1", "cohen_kappa", "roc_auc_macro",
"ece", "per_class": {class: {"precision", "recall", "f1", "support", "roc_auc"}},
"confusion_matrix": [[...]] (rows true, columns predicted), "ci95": {metric: [low, high]},
"pred_histogram", "collapsed", "reliability": [{"bin", "count", "confidence", "accuracy"}]}.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml_training import review_threshold

SCHEMA = "leukemia-portal/metrics/v1"
COLLAPSE_SHARE = 0.9
ECE_BINS = 15
CI_METRICS = ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa", "roc_auc_macro")


# --- Metrics ----------------------------------------------------------------------------------


def collapsed(pred_histogram) -> bool:
    """One class takes at least ``COLLAPSE_SHARE`` of the predictions: a collapsed model."""
    hist = np.asarray(pred_histogram)
    return bool(hist.sum() and hist.max() >= COLLAPSE_SHARE * hist.sum())


def confusion_matrix(y_true, y_pred, k):
    """k × k counts, rows true, columns predicted."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def confusion_scores(cm):
    """Accuracy, per-class and macro / weighted F1, kappa: the one place these are computed, for
    evaluation and for training's per-epoch validation. Macro-F1 averages over the classes in
    the labels or the predictions, as scikit-learn's does: a class absent from the labels but
    predicted counts (F1 0), or calling images a class that is not there would raise it."""
    cm = cm.astype(np.float64)
    n = cm.sum()
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    accuracy = tp.sum() / n if n else 0.0
    expected = (support * predicted).sum() / (n * n) if n else 0.0
    kappa = (accuracy - expected) / (1 - expected) if expected < 1 else 1.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "accuracy": float(accuracy),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
        "cohen_kappa": float(kappa),
    }


def _auc(y_true, probs, k):
    from sklearn.metrics import roc_auc_score

    per_class = []
    for c in range(k):
        positives = y_true == c
        if positives.all() or not positives.any():
            per_class.append(float("nan"))
        else:
            per_class.append(float(roc_auc_score(positives, probs[:, c])))
    valid = [a for a in per_class if not np.isnan(a)]
    return per_class, (float(np.mean(valid)) if valid else float("nan"))


def calibration(y_true, probs, y_pred=None, bins: int = ECE_BINS):
    """Expected calibration error of the shown label's confidence, and the reliability table.

    ``y_pred`` is the label shown (the ensemble's vote, which need not be the arg-max of the
    mean); its confidence is its probability. Default: the arg-max and its probability."""
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=np.int64)
    conf = probs[np.arange(len(probs)), y_pred]
    correct = y_pred == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        sel = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if not sel.any():
            continue
        c, a = float(conf[sel].mean()), float(correct[sel].mean())
        ece += sel.mean() * abs(a - c)
        table.append(
            {
                "bin": [round(lo, 4), round(hi, 4)],
                "count": int(sel.sum()),
                "confidence": c,
                "accuracy": a,
            }
        )
    return float(ece), table


def score(y_true, probs, class_names, *, y_pred=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """All metrics of one model. ``y_pred`` defaults to the arg-max of ``probs`` (the vote's
    labels are passed for the ensemble)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, k)
    m = confusion_scores(cm)
    auc_per_class, auc_macro = _auc(y_true, probs, k)
    ece, table = calibration(y_true, probs, y_pred)
    hist = np.bincount(y_pred, minlength=k)
    out = {
        "images": int(len(y_true)),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "weighted_f1": m["weighted_f1"],
        "cohen_kappa": m["cohen_kappa"],
        "roc_auc_macro": auc_macro,
        "ece": ece,
        "per_class": {
            name: {
                "precision": float(m["precision"][c]),
                "recall": float(m["recall"][c]),
                "f1": float(m["f1"][c]),
                "support": int(m["support"][c]),
                "roc_auc": auc_per_class[c],
            }
            for c, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "pred_histogram": hist.tolist(),
        "collapsed": collapsed(hist),
        "reliability": table,
        "ci95": bootstrap_ci(y_true, probs, y_pred, k, n_boot=n_boot, seed=seed),
    }
    return out


def bootstrap_ci(y_true, probs, y_pred, k, *, n_boot: int, seed: int) -> dict:
    """95% percentile bootstrap intervals over images."""
    if n_boot <= 0 or len(y_true) < 2:
        return {}
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples = {name: [] for name in CI_METRICS}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        m = confusion_scores(confusion_matrix(y_true[idx], y_pred[idx], k))
        for name in ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa"):
            samples[name].append(m[name])
        samples["roc_auc_macro"].append(_auc(y_true[idx], probs[idx], k)[1])
    out = {}
    for name, values in samples.items():
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        if len(arr):
            out[name] = [float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5))]
    return out


def agreement(member_preds: np.ndarray, ensemble_pred: np.ndarray, member_names, y_true) -> dict:
    """How often the members agree: unanimous / majority / split shares, pairwise agreement."""
    member_preds = np.asarray(member_preds)  # (members, images)
    n_members, n = member_preds.shape
    votes = (member_preds == ensemble_pred[None, :]).sum(axis=0)
    unanimous = votes == n_members
    majority = (votes * 2 > n_members) & ~unanimous
    split = votes * 2 <= n_members
    pairwise = {
        a: {
            b: float((member_preds[i] == member_preds[j]).mean())
            for j, b in enumerate(member_names)
        }
        for i, a in enumerate(member_names)
    }
    correct = ensemble_pred == y_true
    return {
        "unanimous": float(unanimous.mean()) if n else 0.0,
        "majority": float(majority.mean()) if n else 0.0,
        "split": float(split.mean()) if n else 0.0,
        "mean_votes_for_label": float(votes.mean()) if n else 0.0,
        "accuracy_when_unanimous": float(correct[unanimous].mean()) if unanimous.any() else None,
        "accuracy_when_not_unanimous": (
            float(correct[~unanimous].mean()) if (~unanimous).any() else None
        ),
        "pairwise": pairwise,
    }


# --- From the engine's results ----------------------------------------------------------------


def evaluate_results(results, y_true, class_names, *, n_boot: int, seed: int = 0) -> dict:
    """Metrics for the vote and every member from the engine's ``EnsembleResult`` list."""
    y_true = np.asarray(y_true, dtype=np.int64)
    member_names = [m.name for m in results[0].members]
    idx = {c: i for i, c in enumerate(class_names)}
    member_probs = np.array(
        [
            [[r.members[j].probabilities[c] for c in class_names] for r in results]
            for j in range(len(member_names))
        ]
    )  # (members, images, classes)
    ens_probs = np.array([[r.probabilities[c] for c in class_names] for r in results])
    ens_pred = np.array([idx[r.label] for r in results])
    ensemble = score(y_true, ens_probs, class_names, y_pred=ens_pred, n_boot=n_boot, seed=seed)
    member_preds = member_probs.argmax(axis=2)
    ensemble["agreement"] = agreement(member_preds, ens_pred, member_names, y_true)
    members = {
        name: score(y_true, member_probs[j], class_names, n_boot=n_boot, seed=seed)
        for j, name in enumerate(member_names)
    }
    return {
        "ensemble": ensemble,
        "members": members,
        "_arrays": {"member_probs": member_probs, "ens_probs": ens_probs, "y_true": y_true},
    }


def strip_arrays(evaluation: dict) -> dict:
    return {k: v for k, v in evaluation.items() if not k.startswith("_")}


def headline(metrics: dict) -> list[tuple]:
    """(model, accuracy, macro-F1, CI low, CI high, kappa, AUC, ECE, collapsed) rows."""
    rows = []
    entries = [("Voted ensemble", metrics["ensemble"])]
    entries += list(metrics["members"].items())
    for name, m in entries:
        ci = m.get("ci95", {}).get("macro_f1", [float("nan"), float("nan")])
        rows.append(
            (
                name,
                m["accuracy"],
                m["macro_f1"],
                ci[0],
                ci[1],
                m["cohen_kappa"],
                m["roc_auc_macro"],
                m["ece"],
                m["collapsed"],
            )
        )
    return rows


def report_markdown(metrics: dict, *, title: str = "Evaluation") -> str:
    """A readable report of a metrics dict."""
    lines = [f"# {title}", ""]
    ts = metrics.get("test_set", {})
    lines.append(
        f"Images: {ts.get('images')} ({ts.get('per_class')}); source: {ts.get('source', 'n/a')}"
    )
    lines += [
        "",
        "| Model | Accuracy | Macro-F1 (95% CI) | Kappa | ROC AUC | ECE | Collapsed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, acc, f1, lo, hi, kappa, auc, ece, collapsed in headline(metrics):
        lines.append(
            f"| {name} | {acc:.4f} | {f1:.4f} ({lo:.4f}–{hi:.4f}) | {kappa:.4f} | "
            f"{auc:.4f} | {ece:.4f} | {'YES' if collapsed else 'no'} |"
        )
    ens = metrics["ensemble"]
    lines += [
        "",
        "Per class (voted ensemble):",
        "",
        "| Class | Precision | Recall | F1 | Support | AUC |",
        "|---|---|---|---|---|---|",
    ]
    for name, pc in ens["per_class"].items():
        lines.append(
            f"| {name} | {pc['precision']:.4f} | {pc['recall']:.4f} | {pc['f1']:.4f} | "
            f"{pc['support']} | {pc['roc_auc']:.4f} |"
        )
    ag = ens.get("agreement")
    if ag:
        lines += [
            "",
            f"Agreement: unanimous {ag['unanimous']:.1%}, majority {ag['majority']:.1%}, "
            f"split {ag['split']:.1%}.",
        ]
    lines += review_threshold.markdown_lines(metrics.get("review_threshold"))
    lines += ["", "Confusion matrix (voted ensemble; rows true, columns predicted):", ""]
    names = list(ens["per_class"])
    lines.append("| | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for name, row in zip(names, ens["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def save_metrics(metrics: dict, out_dir: Path, *, title: str = "Evaluation") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_json_default))
    (out_dir / "report.md").write_text(report_markdown(metrics, title=title))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
