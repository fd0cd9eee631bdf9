"""The retrain pipeline end to end: what ``manage.py retrain`` calls.

``retrain``: run folder (config, manifest, split) → train the members (resumable) → on the
validation split, fit the out-of-domain detector (``ml_training.ood_fit``), the ensemble's
temperature and the review threshold → evaluate the ensemble once on the held-out test split
(Original images) through the serving code (``ml_training.scoring``) → segmentation IoU
against the dataset's ``Segmented/`` tree when present → write ``bundle.json`` → register a
``ModelVersion`` with the member files, detector, calibration, metrics, plots, preprocessing
config, data fingerprint and code version (``ml_training.bundles``; optionally activate it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from inference import voting
from ml_training import data as data_mod
from ml_training import evaluate as ev
from ml_training import ood_fit, review_threshold, train
from ml_training.bundles import (
    CALIBRATION_FILE,
    OOD_FILE,
    _run_json,
    activation_guard,
    register_run,
    write_bundle,
)
from ml_training.member_training import TIME_BUDGET_STOP
from ml_training.scoring import engine_for_members, evaluate_engine, segmentation_iou

logger = logging.getLogger("ml_training")


# --- Retrain ----------------------------------------------------------------------------------


def retrain(
    *,
    data_dir: Path | None = None,
    profile: str = "cpu",
    seed: int = 42,
    run_dir: Path | None = None,
    resume: Path | None = None,
    weights_dir: Path | None = None,
    activate: bool = False,
    is_demo: bool = False,
    notes: str = "",
    progress: bool = True,
    register: bool = True,
    user=None,
    cv_folds: int | None = None,
    cv_fold: int | None = None,
):
    """The whole pipeline. Returns (run context, ModelVersion or None, metrics dict)."""
    t0 = time.time()
    if resume:
        ctx = train.open_run(resume)
        logger.info("resuming %s", ctx.run_dir)
    else:
        if data_dir is None:
            raise ValueError("--data-dir is required unless --resume is given")
        ctx = train.prepare_run(
            data_dir=data_dir,
            profile=profile,
            seed=seed,
            run_dir=run_dir,
            weights_dir=weights_dir,
            cv_folds=cv_folds,
            cv_fold=cv_fold,
        )
    handler = train.attach_log_file(ctx.run_dir)
    try:
        split_counts = ctx.split.to_json(ctx.manifest)["counts"]
        logger.info(
            "run %s: manifest %s; split %s", ctx.run_dir, ctx.manifest.summary(), split_counts
        )
        train_infos = train.train_run(ctx, progress=progress)
        train_seconds = time.time() - t0
        metrics = evaluate_run(ctx, progress=progress)
        metrics["extra"]["training"] = training_summary(ctx, train_infos, train_seconds)
        ev.save_metrics(
            metrics, ctx.run_dir / "eval", title=f"Run {ctx.run_dir.name}: test split (Original)"
        )
        write_bundle(ctx, metrics)
        activate, notes = activation_guard(metrics, activate=activate, is_demo=is_demo, notes=notes)
        version = None
        if register:
            version = register_run(
                ctx, metrics, activate=activate, is_demo=is_demo, notes=notes, user=user
            )
        total = round(time.time() - t0, 1)
        ctx.write_state(
            "registered" if version else "evaluated",
            version=version.version if version else None,
            total_seconds_this_session=total,
        )
        logger.info(
            "run %s finished in %.0fs%s",
            ctx.run_dir,
            total,
            f": registered {version}" if version else "",
        )
        return ctx, version, metrics
    finally:
        train.logger.removeHandler(handler)
        handler.close()


def training_summary(ctx: train.RunContext, infos: dict, seconds: float) -> dict:
    members = {}
    for name, info in infos.items():
        members[name] = {
            "architecture": info["architecture"],
            "input_size": info["input_size"],
            "precision": info.get("precision", "float32"),
            "epochs_run": info.get("epochs_run"),
            "planned_epochs": info.get("planned_epochs"),
            "best_epoch": info.get("best_epoch"),
            "stopped": info.get("stopped"),
            "steps_per_epoch": info.get("steps_per_epoch"),
            "train_seconds": info.get("train_seconds"),
            "val_macro_f1": info.get("val", {}).get("macro_f1"),
            "val_accuracy": info.get("val", {}).get("accuracy"),
            "collapsed_in_validation": info.get("collapsed"),
            "history": info.get("history"),
        }
    state = ctx.read_state()
    capped = sorted(
        name for name, m in members.items() if str(m["stopped"] or "").startswith(TIME_BUDGET_STOP)
    )
    return {
        "profile": ctx.profile["name"],
        "seed": ctx.config["seed"],
        # A wall-clock cap (max_minutes, an opt-in safety net) that fired made the epoch count
        # depend on the machine's speed and load: the same command need not give these weights.
        "reproducible": not capped,
        "time_capped_members": capped,
        "members": members,
        "train_seconds_sum": round(sum(m["train_seconds"] or 0 for m in members.values()), 1),
        "pipeline_seconds_this_session": round(seconds, 1),
        "state_history": state.get("history", []),
        "machine": train.machine_info(),
        "weights": "imagenet" if ctx.config.get("weights_dir") else "none (from scratch)",
    }


def evaluate_run(ctx: train.RunContext, *, progress: bool = True) -> dict:
    """Evaluate a trained run on its test split (and the Segmented twins when they exist)."""
    prof = ctx.profile
    class_names = list(data_mod.CLASS_NAMES)
    eval_dir = ctx.run_dir / "eval"
    members = train.member_specs(ctx)
    engine = engine_for_members(members, prof["preprocessing"], class_names)
    batch_size = int(prof["eval"]["batch_size"])
    # Every choice is made on the validation split before the test split is scored: the
    # out-of-domain detector's thresholds and the review threshold.
    val = ood_fit.engine_outputs(
        engine, ctx.manifest.paths(ctx.split.val), batch_size=batch_size, progress=progress
    )
    val_labels = ctx.manifest.labels[ctx.split.val]
    engine = fit_run_detector(ctx, engine, val, progress=progress)
    engine = dataclasses.replace(engine, temperature=fit_run_calibration(ctx, val, val_labels))
    review = review_threshold.from_results(
        voting.vote_batch(
            val.probs, class_names, engine.member_names, temperature=engine.temperature
        ),
        val_labels,
        class_names,
    )
    logger.info("review threshold: %s", review_threshold.summary(review))
    test_idx = ctx.split.test
    labels = ctx.manifest.labels[test_idx]
    n_boot = int(prof["eval"]["bootstrap"])
    seed = int(ctx.config["seed"])
    metrics = evaluate_engine(
        engine,
        ctx.manifest.paths(test_idx),
        labels,
        class_names=class_names,
        out_dir=eval_dir,
        n_boot=n_boot,
        seed=seed,
        progress=progress,
        batch_size=int(prof["eval"]["batch_size"]),
        test_set={
            "name": "held-out test split",
            "source": f"{ctx.manifest.root} (test split of run {ctx.run_dir.name})",
            "data_dir": ctx.manifest.root,
            "fingerprint": ctx.config["data_fingerprint"],
            "split_seed": seed,
            "split_sha256": ctx.split.digest(ctx.manifest),
        },
    )
    metrics["review_threshold"] = review
    metrics["ood"] = engine.ood.config
    metrics["calibration"] = _run_json(ctx.run_dir, CALIBRATION_FILE)
    metrics["extra"] = {}
    seg_paths = [data_mod.sibling_path(ctx.manifest, ctx.manifest.entries[i]) for i in test_idx]
    if prof["eval"].get("segmented", True) and seg_paths and all(seg_paths):
        seg = evaluate_engine(
            engine,
            seg_paths,
            labels,
            class_names=class_names,
            out_dir=None,
            n_boot=min(n_boot, 200),
            seed=seed,
            progress=progress,
            batch_size=int(prof["eval"]["batch_size"]),
            test_set={
                "name": "held-out test split, Segmented twins",
                "source": str(Path(ctx.manifest.root).parent / "Segmented"),
            },
        )
        seg.pop("plots", None)
        metrics["extra"]["segmented"] = seg
    if prof["eval"].get("segmentation_iou", True):
        metrics["extra"]["segmentation_iou"] = segmentation_iou(
            ctx.manifest, range(len(ctx.manifest.entries))
        )
    metrics["extra"]["manifest"] = ctx.manifest.summary()
    metrics["extra"]["split"] = ctx.split.to_json(ctx.manifest)["counts"]
    ev.save_metrics(metrics, eval_dir, title=f"Run {ctx.run_dir.name}: test split (Original)")
    ctx.write_state("evaluated")
    del engine
    return metrics


def fit_run_detector(ctx: train.RunContext, engine, val, *, progress: bool = True):
    """Fit the out-of-domain detector on the run's training split (thresholds on ``val``), write
    it to the run folder (``ood.npz``, ``ood.json``) and return the engine carrying it."""
    train_idx = ctx.split.train
    detector, config = ood_fit.fit_detector(
        engine,
        ctx.manifest.paths(train_idx),
        ctx.manifest.labels[train_idx],
        val,
        batch_size=int(ctx.profile["eval"]["batch_size"]),
        progress=progress,
    )
    (ctx.run_dir / OOD_FILE).write_bytes(detector.to_bytes())
    (ctx.run_dir / "ood.json").write_text(json.dumps(config, indent=1))
    return engine.with_ood(detector)


def fit_run_calibration(ctx: train.RunContext, val, labels) -> float:
    """The ensemble's temperature on the validation split, from the served views' member
    probabilities (``val.probs``); written to ``calibration.json`` with its figures."""
    from ml_training import calibration

    mean = val.probs.mean(axis=1)
    t = calibration.fit_temperature(mean, labels)
    tempered = np.stack([voting.calibrated_mean(p, t) for p in val.probs])
    shown = voting.winners(val.probs)  # the label a person sees, whose confidence is judged
    record = {
        "method": "temperature on the members' mean probability (softmax(log(mean) / T))",
        "temperature": round(t, 6),
        "fitted_on": f"validation split, {len(labels)} images, test-time views as served",
        "val_nll_before": round(calibration.nll(mean, labels), 6),
        "val_nll_after": round(calibration.nll(tempered, labels), 6),
        "val_ece_before": round(ev.calibration(labels, mean, shown)[0], 6),
        "val_ece_after": round(ev.calibration(labels, tempered, shown)[0], 6),
    }
    (ctx.run_dir / CALIBRATION_FILE).write_text(json.dumps(record, indent=1))
    logger.info(
        "ensemble temperature %.4f: validation ECE %.4f -> %.4f",
        t,
        record["val_ece_before"],
        record["val_ece_after"],
    )
    return t
