"""The retrain pipeline end to end, and bundles: what the management commands call.

``retrain``: run folder (config, manifest, split) → train the members (resumable) → evaluate
the ensemble on the held-out test split (Original images) through the serving code →
segmentation IoU against the dataset's ``Segmented/`` tree when present → write
``bundle.json`` → register a ``ModelVersion`` with the member files, metrics, plots,
preprocessing config, data fingerprint and code version (optionally activate it).

A *bundle* is a folder with ``bundle.json`` and the member ``.keras`` files it names (a run folder
is one). ``register_bundle`` validates a bundle trained elsewhere (files, sha256, loadable, input
shapes, classes) and registers it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from inference import voting
from inference.checksums import sha256_file
from ml_training import data as data_mod
from ml_training import evaluate as ev
from ml_training import ood_fit, review_threshold, train

logger = logging.getLogger("ml_training")

BUNDLE_FORMAT = "leukemia-portal/ensemble-bundle/v1"


# --- The serving engine on local member files -------------------------------------------------


def engine_for_members(members: list[dict], preprocessing: dict, class_names: list[str]):
    """An ``EnsembleEngine`` over local ``.keras`` files, built with the engine's own pieces
    (``build_fused_model`` and ``EnsembleEngine.classify``) so that the evaluation runs the
    serving code before the files are registered. ``members``: name, architecture, input_size,
    path."""
    import keras

    import inference.layers  # noqa: F401 - registers InputScaling
    from inference.engine import EnsembleEngine
    from inference.models import ModelVersion
    from inference.preprocessing import resolve_config

    cfg = resolve_config(preprocessing)
    models = [keras.saving.load_model(m["path"], compile=False) for m in members]
    names = [m["name"] for m in members]
    for model, m in zip(models, members, strict=True):
        _check_model(model, m, class_names)
    unsaved = ModelVersion(
        members=[{k: v for k, v in m.items() if k != "path"} for m in members],
        preprocessing=cfg,
        class_names=list(class_names),
    )
    return EnsembleEngine.from_models(unsaved, models, names, cfg)


def _check_model(model, member: dict, class_names: list[str]) -> None:
    size = int(member["input_size"])
    shape = tuple(model.input_shape)[1:]
    if shape != (size, size, 3):
        raise ValueError(f"member {member['name']}: input {shape}, expected ({size}, {size}, 3)")
    classes = int(model.output_shape[-1])
    if classes != len(class_names):
        raise ValueError(
            f"member {member['name']}: {classes} outputs, expected {len(class_names)} classes"
        )


def classify_with(engine, paths, *, batch_size: int = 32, progress: bool = False):
    from tqdm.auto import tqdm

    results = []
    t0 = time.time()
    paths = list(paths)
    with tqdm(total=len(paths), desc="evaluate", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = [Path(p).read_bytes() for p in paths[start : start + batch_size]]
            results.extend(engine.classify(chunk))
            bar.update(len(chunk))
    return results, time.time() - t0


def evaluate_engine(
    engine,
    paths,
    labels,
    *,
    class_names,
    out_dir: Path | None,
    n_boot: int,
    seed: int,
    test_set: dict,
    progress: bool = False,
    batch_size: int = 32,
    prefix: str = "",
) -> dict:
    results, seconds = classify_with(engine, paths, batch_size=batch_size, progress=progress)
    evaluation = ev.evaluate_results(results, labels, class_names, n_boot=n_boot, seed=seed)
    per_class = np.bincount(np.asarray(labels), minlength=len(class_names))
    metrics = {
        "schema": ev.SCHEMA,
        "ensemble": evaluation["ensemble"],
        "members": evaluation["members"],
        "test_set": {
            "images": int(len(labels)),
            "per_class": dict(zip(class_names, per_class.tolist(), strict=True)),
            "inference_seconds": round(seconds, 2),
            "images_per_second": round(len(labels) / seconds, 2) if seconds else None,
            **test_set,
        },
        "plots": {},
        "out_of_domain": out_of_domain_summary(results),
    }
    kept = [i for i, r in enumerate(results) if not r.out_of_domain]
    if results and 0 < len(kept) < len(results):
        # The same metrics over the images the detector lets through: what the portal labels.
        within = ev.evaluate_results(
            [results[i] for i in kept],
            np.asarray(labels)[kept],
            class_names,
            n_boot=n_boot,
            seed=seed,
        )
        metrics["in_domain"] = {"images": len(kept), "ensemble": within["ensemble"]}
    if out_dir is not None:
        metrics["plots"] = ev.write_plots(evaluation, class_names, Path(out_dir), prefix=prefix)
    return metrics


def out_of_domain_summary(results) -> dict:
    """``{"flagged": k, "total": n, "share": k / n, "detector": bool}`` of engine results."""
    flagged = sum(1 for r in results if r.out_of_domain)
    return {
        "flagged": flagged,
        "total": len(results),
        "share": round(flagged / len(results), 4) if results else None,
        "detector": any(r.ood_score is not None for r in results),
    }


# --- Segmentation check -----------------------------------------------------------------------


def segmentation_iou(manifest: data_mod.Manifest, indices, config: dict | None = None) -> dict:
    """Mean mask IoU of ``inference.segmentation`` against the dataset's own Segmented images."""
    from inference.preprocessing import decode_image
    from inference.segmentation import mask, mask_from_segmented, mask_iou, resolve

    cfg = resolve(config)
    ious, per_class, empty_reference = [], {}, 0
    for i in indices:
        entry = manifest.entries[i]
        ref_path = data_mod.sibling_path(manifest, entry, "Segmented")
        if ref_path is None:
            continue
        rgb = decode_image(manifest.abspath(entry))
        ref = mask_from_segmented(decode_image(ref_path))
        if ref.shape != rgb.shape[:2]:
            continue
        if ref.mean() < 0.005:
            empty_reference += 1  # the authors' threshold lost the cell: no reference to match
            continue
        iou = mask_iou(mask(rgb, cfg), ref)
        ious.append(iou)
        per_class.setdefault(entry.label, []).append(iou)
    if not ious:
        return {"available": False}
    return {
        "available": True,
        "config": cfg,
        "images": len(ious),
        "mean_iou": float(np.mean(ious)),
        "median_iou": float(np.median(ious)),
        "per_class_mean_iou": {c: float(np.mean(v)) for c, v in sorted(per_class.items())},
        "skipped_empty_reference": empty_reference,
        "reference_mask": "Segmented image pixels whose brightest channel > 30",
    }


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
        collapsed = [n for n, m in metrics["members"].items() if m["collapsed"]]
        if collapsed:
            logger.warning(
                "collapsed members on the test split (one class for >= 90%%): %s", collapsed
            )
        if activate and collapsed and not is_demo:
            # A collapsed member silently turns the vote into a four-member vote: never
            # activate such an ensemble automatically; register it as a candidate to inspect.
            logger.warning("not activating: %s collapsed; registered as a candidate", collapsed)
            activate = False
            notes = (notes + " " if notes else "") + f"NOT ACTIVATED: collapsed {collapsed}."
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
    return {
        "profile": ctx.profile["name"],
        "seed": ctx.config["seed"],
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
    review = review_threshold.from_results(
        voting.vote_batch(val.probs, class_names, engine.member_names), val_labels, class_names
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
        },
    )
    metrics["review_threshold"] = review
    metrics["ood"] = engine.ood.config
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


OOD_FILE = "ood.npz"


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
    """The metrics stored on the ModelVersion: plots point at the stored names (``plots/...``)."""
    out = json.loads(json.dumps(metrics, default=ev._json_default))
    out["plots"] = {k: f"plots/{v}" for k, v in metrics.get("plots", {}).items()}
    return out


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
    return register_version(
        name="all-ensemble-demo" if is_demo else "all-ensemble",
        members=members,
        preprocessing=ctx.profile["preprocessing"],
        class_names=list(data_mod.CLASS_NAMES),
        metrics=registry_metrics(metrics),
        review_threshold=review_threshold.threshold_value(metrics),
        data_fingerprint=ctx.config["data_fingerprint"],
        code_version=ctx.config["code_version"],
        notes=note,
        is_demo=is_demo,
        extra_files=_plot_files(ctx.run_dir / "eval", metrics),
        ood=_run_ood(ctx.run_dir),
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

    import inference.layers  # noqa: F401
    from inference.architectures import validate_member_spec
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
        model = keras.saving.load_model(file, compile=False)
        _check_model(model, m, class_names)
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
    return register_version(
        name=bundle.get("name") or "all-ensemble",
        members=[
            {
                "name": m["name"],
                "architecture": m["architecture"],
                "input_size": int(m["input_size"]),
                "path": m["path"],
            }
            for m in bundle["members"]
        ],
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
        activate=activate,
        user=user,
    )


# --- Evaluating a registered version on any labelled folder -----------------------------------


def evaluate_registered(
    version,
    data_dir: Path | None = None,
    *,
    run_dir: Path | None = None,
    split: str = "test",
    segmented: bool = False,
    n_boot: int = 1000,
    seed: int = 42,  # retrain's default seed: same bootstrap resamples as the run's own
    progress: bool = False,
    out_dir: Path | None = None,
    batch_size: int = 32,
    tta: str | None = None,
) -> dict:
    """Score a registered version (``EnsembleEngine.from_version``: the worker's loading code,
    artifacts fetched from storage and sha256-checked) on a labelled folder, or on one split of
    a run folder (``run_dir``/``split``; ``segmented`` takes the Segmented twins). ``tta``
    overrides the version's test-time views (what the version would score with them)."""
    from inference.engine import EnsembleEngine

    if run_dir is not None:
        ctx = train.open_run(run_dir)
        indices = getattr(ctx.split, split)
        paths = ctx.manifest.paths(indices)
        if segmented:
            paths = [data_mod.sibling_path(ctx.manifest, ctx.manifest.entries[i]) for i in indices]
            if not all(paths):
                raise ValueError("this run's data has no Segmented twins")
        labels = ctx.manifest.labels[indices]
        source = f"{split} split of run {Path(run_dir).name}" + (
            " (Segmented)" if segmented else ""
        )
    elif data_dir is not None:
        items = data_mod.discover(data_dir)
        paths = [p for p, _ in items]
        labels = np.array([data_mod.CLASS_NAMES.index(c) for _, c in items])
        source = str(Path(data_dir).resolve())
    else:
        raise ValueError("give a data directory or a run folder")
    engine = EnsembleEngine.from_version(version, tta=tta)
    test_set = {"name": source, "source": source, "version": version.version}
    test_set["tta"] = engine.preprocessing["tta"]
    if tta is not None:
        test_set["tta_override"] = tta
    return evaluate_engine(
        engine,
        paths,
        labels,
        class_names=list(version.class_names),
        out_dir=out_dir,
        n_boot=n_boot,
        seed=seed,
        progress=progress,
        batch_size=batch_size,
        test_set=test_set,
    )
