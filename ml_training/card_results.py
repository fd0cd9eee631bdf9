"""The model card's result sections (test metrics, errors, out-of-domain detector, review
threshold, extras) as template rows, and the number formats the card uses."""

from __future__ import annotations

import json


def fmt(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}"


def ci_text(m, key="macro_f1"):
    ci = (m.get("ci95") or {}).get(key)
    return f"{fmt(ci[0])}–{fmt(ci[1])}" if ci else "n/a"


def minutes(seconds):
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def results_context(metrics: dict, names: list[str]) -> dict:
    ens = metrics["ensemble"]
    models = [("**Voted ensemble**", ens), *metrics["members"].items()]
    ag = ens.get("agreement") or {}
    return {
        "rows": [
            {
                "name": name,
                "accuracy": f"{fmt(m['accuracy'])} ({ci_text(m, 'accuracy')})",
                "macro_f1": f"{fmt(m['macro_f1'])} ({ci_text(m)})",
                "weighted_f1": fmt(m["weighted_f1"]),
                "kappa": fmt(m["cohen_kappa"]),
                "auc": fmt(m["roc_auc_macro"]),
                "ece": fmt(m["ece"]),
                "collapsed": "YES" if m["collapsed"] else "no",
            }
            for name, m in models
        ],
        "per_class": [
            {
                "name": c,
                "precision": fmt(pc["precision"]),
                "recall": fmt(pc["recall"]),
                "f1": fmt(pc["f1"]),
                "support": pc["support"],
                "auc": fmt(pc["roc_auc"]),
            }
            for c, pc in ens["per_class"].items()
        ],
        "classes": names,
        "member_f1": [
            {"name": n, "cells": " | ".join(fmt(pc["f1"]) for pc in m["per_class"].values())}
            for n, m in metrics["members"].items()
        ],
        "agreement": {
            k: (f"{v:.1%}" if k in ("unanimous", "majority", "split") else fmt(v))
            for k, v in ag.items()
            if isinstance(v, (int, float))  # "pairwise" is a table, not a figure
        },
        "confusion": [
            {"name": n, "cells": " | ".join(str(v) for v in row)}
            for n, row in zip(names, ens["confusion_matrix"], strict=True)
        ],
        "errors": error_summary(names, ens["confusion_matrix"]),
        "bootstrap": metrics.get("bootstrap") or "1000",
    }


def ood_context(ood: dict | None, metrics: dict, probes: list[dict]) -> dict | None:
    if not ood:
        return None
    probe_rows = [
        {
            "folder": p["folder"],
            "command": p["command"],
            "flagged": f"{p['out_of_domain']} of {p['images']}",
            "share": f"{p['out_of_domain'] / p['images']:.1%}" if p["images"] else "n/a",
            "min": fmt(p["min_score"], 2),
            "median": fmt(p["median_score"], 2),
            "by_features": (p.get("flagged_by") or {}).get("features", "n/a"),
            "by_image": (p.get("flagged_by") or {}).get("image", "n/a"),
        }
        for p in probes
    ]
    test = metrics.get("out_of_domain") or {}
    within = (metrics.get("in_domain") or {}).get("ensemble")
    return {
        "config": ood,
        "probes": probe_rows,
        "feature_threshold": fmt(ood["feature_threshold"], 3),
        "statistics_threshold": fmt(ood["statistics_threshold"], 3),
        "floor": fmt(ood["min_stained_share"], 4),
        "val_pass": f"{ood['val_pass_share']:.1%}",
        "test_flagged": test.get("flagged"),
        "test_total": test.get("total"),
        "test_share": f"{test['share']:.1%}" if test.get("share") is not None else "n/a",
        "in_domain_images": (metrics.get("in_domain") or {}).get("images"),
        "in_domain_f1": f"{fmt(within['macro_f1'])} ({ci_text(within)})" if within else None,
        "in_domain_accuracy": fmt(within["accuracy"]) if within else None,
    }


def review_context(figures: dict | None) -> dict | None:
    if not figures:
        return None
    ci = figures.get("accuracy_above_ci95") or [None, None]
    return {
        "value": fmt(figures["value"]),
        "target": f"{figures['target_accuracy']:.2f}",
        "met": figures["target_met"],
        "above": figures["above_threshold"],
        "images": figures["validation_images"],
        "coverage": f"{figures['coverage']:.1%}",
        "accuracy_above": fmt(figures["accuracy_above"]),
        "ci": f"{fmt(ci[0])}–{fmt(ci[1])}",
        "below": fmt(figures.get("accuracy_below")),
    }


def extras_context(metrics: dict, card: dict) -> dict:
    extra = metrics.get("extra", {})
    seg = extra.get("segmented")
    iou = extra.get("segmentation_iou") or {}
    verification = card.get("verification")
    return {
        "segmented": (
            {
                "accuracy": fmt(seg["ensemble"]["accuracy"]),
                "macro_f1": f"{fmt(seg['ensemble']['macro_f1'])} ({ci_text(seg['ensemble'])})",
            }
            if seg
            else None
        ),
        "iou": (
            {
                "config": json.dumps(iou["config"]),
                "reference": iou["reference_mask"],
                "images": iou["images"],
                "mean": fmt(iou["mean_iou"], 3),
                "median": fmt(iou["median_iou"], 3),
                "per_class": ", ".join(
                    f"{c} {fmt(v, 3)}" for c, v in iou["per_class_mean_iou"].items()
                ),
                "skipped": iou["skipped_empty_reference"],
            }
            if iou.get("available")
            else None
        ),
        "verification": (
            {
                "accuracy": fmt(verification["ensemble"]["accuracy"]),
                "macro_f1": fmt(verification["ensemble"]["macro_f1"]),
                "images": verification["test_set"]["images"],
            }
            if verification
            else None
        ),
    }


def missed_leukaemia(names: list[str], confusion: list[list[int]]) -> tuple[int, int]:
    """(malignant images called Benign, malignant images): the error that misses a leukaemia."""
    if "Benign" not in names:
        return 0, 0
    b = names.index("Benign")
    malignant = [i for i in range(len(names)) if i != b]
    return sum(confusion[i][b] for i in malignant), sum(sum(confusion[i]) for i in malignant)


def error_summary(names: list[str], confusion: list[list[int]]) -> str:
    """Where the voted ensemble errs, most frequent confusion first, and how many malignant
    (non-Benign) images it called Benign: the error that would miss a leukaemia."""
    pairs = sorted(
        (
            (confusion[i][j], names[i], names[j])
            for i in range(len(names))
            for j in range(len(names))
            if i != j and confusion[i][j]
        ),
        reverse=True,
    )
    if not pairs:
        return "No test image was misclassified."
    total = sum(count for count, _, _ in pairs)
    parts = [f"{count} {true} as {pred}" for count, true, pred in pairs]
    text = f"Errors: {total} test images ({', '.join(parts)})."
    missed, malignant = missed_leukaemia(names, confusion)
    if malignant:
        b = names.index("Benign")
        text += (
            f" Malignant images called Benign (a missed leukaemia): **{missed} of {malignant}**"
            f"; Benign images called malignant: {sum(confusion[b]) - confusion[b][b]} of "
            f"{sum(confusion[b])}."
        )
    return text
