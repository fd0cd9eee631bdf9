"""Render ``docs/model-card.md`` from committed summary files, so anyone can regenerate it.

``python manage.py render_model_card`` reads ``docs/model-card/run/`` (the released run's
small summary files, exported from its run folder by ``render_model_card --from-run RUN_DIR``
with ``ml_training.card_files``) and renders ``templates/ml_training/model_card.md``. This
module only turns those files into the template's context: numbers formatted, tables as rows,
the clinically worst error and the caveats spelled out. Every figure comes from a file the run
wrote; nothing is measured here.
"""

from __future__ import annotations

from pathlib import Path

from django.template.loader import render_to_string

from ml_training.card_files import PLOTS, load_summary
from ml_training.card_results import (
    ci_text,
    extras_context,
    fmt,
    minutes,
    missed_leukaemia,
    ood_context,
    results_context,
    review_context,
)
from ml_training.member_training import TIME_BUDGET_STOP

TEMPLATE = "ml_training/model_card.md"
DATASET_CITATION = (
    "Aria M., Ghaderzadeh M., Bashash D., Abolghasemi H., Asadi F., Hosseini A. "
    '"Acute Lymphoblastic Leukemia (ALL) image dataset". Bone-marrow laboratory of Taleqani '
    "Hospital, Tehran. Mendeley Data / Kaggle. 3,256 peripheral blood smear images of 89 "
    "patients, Zeiss camera at 100x, 224x224 JPG; cell types confirmed by flow cytometry."
)
TARGET_MACRO_F1 = 0.99
TARGET_MISSED_SHARE = 0.005


def render(summary_dir: Path, out: Path) -> Path:
    """Write the card rendered from ``summary_dir`` to ``out``; returns ``out``."""
    summary = load_summary(summary_dir)
    plots_dir = Path(summary_dir).parent
    context = card_context(summary)
    context["plots"] = [
        {"name": name[:-4], "path": f"{plots_dir.name}/{name}"}
        for name in PLOTS
        if (plots_dir / name).is_file()
    ]
    context["summary_dir"] = summary_dir_label(summary_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_to_string(TEMPLATE, context))
    return out


def summary_dir_label(path: Path) -> str:
    from django.conf import settings

    try:
        return str(Path(path).resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return Path(path).name


def card_context(s: dict) -> dict:
    """The template's context from a loaded summary (``card_files.load_summary``)."""
    config, metrics = s["config"], s["metrics"]
    profile = config["profile"]
    ens = metrics["ensemble"]
    names = list(ens["per_class"])
    training = metrics.get("extra", {}).get("training", {})
    return {
        "card": s["card"],
        "config": config,
        "profile": profile,
        "citation": DATASET_CITATION,
        "summary": summary_figures(s),
        "cv": cv_context(s["cv"], metrics, config),
        "data": data_context(s),
        "training": training_context(s, training),
        "results": results_context(metrics, names),
        "ood": ood_context(s["ood"], metrics, s["probes"]),
        "calibration": s["calibration"],
        "rerun": s.get("rerun"),
        "calibration_ece_before": fmt((s["calibration"] or {}).get("val_ece_before")),
        "calibration_ece_after": fmt((s["calibration"] or {}).get("val_ece_after")),
        "review": review_context(metrics.get("review_threshold")),
        "extra": extras_context(metrics, s["card"]),
        "limits": limits(config, profile, s["members"]),
    }


def summary_figures(s: dict) -> dict:
    metrics, state = s["metrics"], s["state"] or {}
    ens = metrics["ensemble"]
    training = metrics.get("extra", {}).get("training", {})
    machine = training.get("machine", {})
    history = state.get("history", [])
    finished = next((h["at"] for h in reversed(history) if h["status"] == "registered"), None)
    upper = (ens.get("ci95") or {}).get("macro_f1", [0, 0])[1]
    total = state.get("total_seconds_this_session")
    missed, malignant = missed_leukaemia(list(ens["per_class"]), ens["confusion_matrix"])
    return {
        "images": metrics["test_set"]["images"],
        "accuracy": fmt(ens["accuracy"]),
        "accuracy_ci": ci_text(ens, "accuracy"),
        "macro_f1": fmt(ens["macro_f1"]),
        "macro_f1_ci": ci_text(ens),
        "kappa": fmt(ens["cohen_kappa"]),
        "auc": fmt(ens["roc_auc_macro"]),
        "ece": fmt(ens["ece"]),
        "train_minutes": minutes(training.get("train_seconds_sum")),
        "total_minutes": minutes(total),
        "within_hour": total is not None and total <= 3600,
        "started": s["config"].get("created_at"),
        "finished": finished or "n/a",
        "machine": machine,
        "weights": training.get("weights", "n/a"),
        "reproducible": training.get("reproducible", True),
        "capped": training.get("time_capped_members", []),
        "target": TARGET_MACRO_F1,
        "target_met": ens["macro_f1"] >= TARGET_MACRO_F1,
        "interval_includes_target": upper >= TARGET_MACRO_F1,
        "missed": missed,
        "malignant": malignant,
        "missed_share": f"{missed / malignant:.2%}" if malignant else "n/a",
        "missed_target": f"{TARGET_MISSED_SHARE:.1%}",
        "missed_target_met": bool(malignant) and missed / malignant <= TARGET_MISSED_SHARE,
    }


def cv_context(cv: dict | None, metrics: dict, config: dict) -> dict | None:
    """Cross-validation rows (per model: folds, mean ± SD) beside the test figure."""
    if not cv:
        return None
    rows = []
    for model, row in cv["models"].items():
        test = metrics["ensemble"] if model == "ensemble" else metrics["members"].get(model)
        sd = row["sd"]["macro_f1"]
        rows.append(
            {
                "name": "**Voted ensemble**" if model == "ensemble" else model,
                "folds": " · ".join(fmt(p["macro_f1"]) for p in row["per_fold"]),
                "mean_sd": fmt(row["mean"]["macro_f1"]) + (f" ± {sd:.4f}" if sd else ""),
                "test": f"{fmt(test['macro_f1'])} ({ci_text(test)})" if test else "n/a",
            }
        )
    ens = cv["models"]["ensemble"]
    return {
        "k": cv["folds"],
        "present": ", ".join(map(str, cv["folds_present"])),
        "complete": cv["complete"],
        "images": sum(cv["test_images"]),
        "profile": cv["profile"],
        "seed": cv["seed"],
        "same_recipe": cv["data_fingerprint"] == metrics["test_set"].get("fingerprint")
        and (cv["profile"], cv["seed"]) == (config["profile"]["name"], config["seed"]),
        "runs": cv["runs"],
        "rows": rows,
        "ensemble_mean_sd": fmt(ens["mean"]["macro_f1"])
        + (f" ± {ens['sd']['macro_f1']:.4f}" if ens["sd"]["macro_f1"] else ""),
    }


def data_context(s: dict) -> dict:
    extra = s["metrics"].get("extra", {})
    manifest = extra.get("manifest", {})
    counts = s["split"]["counts"]
    classes = list(manifest.get("per_class", counts["train"]))
    return {
        "manifest": manifest,
        "classes": classes,
        "method": s["split"].get("method", "StratifiedGroupKFold"),
        "rows": [
            {
                "part": part,
                "cells": " | ".join(str(counts[part][c]) for c in classes),
                "total": sum(counts[part].values()),
            }
            for part in ("train", "val", "test")
        ],
    }


def training_context(s: dict, training: dict) -> dict:
    profile = s["config"]["profile"]
    members = s["members"]
    pre = profile["preprocessing"]
    rows, calibration_rows = [], []
    for m in profile["members"]:
        info = members.get(m["name"], {})
        rows.append(
            {
                "name": m["name"],
                "input": m["input_size"],
                "window": info.get("train_crop") or "whole",
                "precision": info.get("precision", "float32"),
                "lr": m.get("learning_rate", profile["train"]["learning_rate"]),
                "epochs": f"{info.get('epochs_run')} / {info.get('planned_epochs')}",
                "best": info.get("best_epoch"),
                "val_f1": fmt(info.get("val", {}).get("macro_f1")),
                "time": minutes(info.get("train_seconds")),
                "stopped": info.get("stopped"),
            }
        )
        c = info.get("calibration")
        if c:
            calibration_rows.append(
                {
                    "name": m["name"],
                    "t": f"{c['temperature']:.3f}",
                    "bias": ", ".join(f"{v:+.2f}" for v in c["bias"]),
                    "nll": f"{c['val_nll_before']:.4f} → {c['val_nll_after']:.4f}",
                    "f1": f"{fmt(c['val_before']['macro_f1'])} → {fmt(c['val_after']['macro_f1'])}",
                    "kept": "yes" if c["kept"] else "no",
                }
            )
    return {
        "pre_json": _json(pre),
        "tta": pre.get("tta", "none"),
        "windows": any(m.get("train_crop") for m in profile["members"]),
        "augment": ", ".join(f"{k} {v}" for k, v in profile.get("augment", {}).items() if v),
        "t": profile["train"],
        "rows": rows,
        "calibration_rows": calibration_rows,
        "epochs_fixed": not any(m.get("max_minutes") for m in profile["members"]),
    }


def limits(config: dict, profile: dict, members: dict) -> list[str]:
    """The caveats that depend on the run (the fixed ones are in the template)."""
    out = [initial_weights_note(config, profile)]
    capped = wall_clock_note(members)
    if capped:
        out.append(capped)
    return out


def _json(value) -> str:
    import json

    return json.dumps(value)


def initial_weights_note(config: dict, profile: dict) -> str:
    """How the members started (ImageNet or from scratch) and which ones run below the input."""
    text = (
        "Members were fine-tuned from ImageNet weights read from `--weights-dir`"
        if config.get("weights_dir")
        else "Members were trained from scratch (no ImageNet weights)"
    )
    size = int(profile["preprocessing"]["input_size"])
    reduced = [m for m in profile["members"] if int(m["input_size"]) < size]
    if reduced:
        text += (
            "; "
            + ", ".join(f"{m['name']} ({m['input_size']} px)" for m in reduced)
            + f" see the {size} px field downscaled, to fit the profile's time budget"
        )
    return text + "."


def wall_clock_note(members_info: dict) -> str | None:
    """The reproducibility caveat of members stopped by their wall-clock cap; None if none were.

    Such a member's epoch count depends on the machine's speed and load, so a rerun with the
    same seed and data gives the same split but not the same weights or figures.
    """
    capped = [
        name
        for name, info in members_info.items()
        if str(info.get("stopped", "")).startswith(TIME_BUDGET_STOP)
    ]
    if not capped:
        return None
    return (
        f"**Reruns differ**: {', '.join(capped)} stopped on their wall-clock cap, so their "
        "epoch counts depend on the machine's speed and load. A rerun with the same seed and "
        "data reproduces the split, not the weights: expect the test figures to move within "
        "their confidence intervals. `--cv-folds` with `cv_report` measures the spread."
    )
