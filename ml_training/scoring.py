"""The serving engine on local member files, and scoring it: what the retrain's evaluation and
``evaluate_model`` share.

``engine_for_members`` fuses ``.keras`` files with the engine's own code (before anything is
registered); ``evaluate_engine`` classifies a labelled list of images through it and computes
the metrics (over all images, and over those the out-of-domain detector lets through);
``evaluate_registered`` does the same for a registered version, loaded as the worker loads it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ml_training import data as data_mod
from ml_training import evaluate as ev
from ml_training import plots, train

logger = logging.getLogger("ml_training")


# --- The serving engine on local member files -------------------------------------------------


def engine_for_members(members: list[dict], preprocessing: dict, class_names: list[str]):
    """An ``EnsembleEngine`` over local ``.keras`` files, built with the engine's own pieces
    (``build_fused_model`` and ``EnsembleEngine.classify``) so that the evaluation runs the
    serving code before the files are registered. ``members``: name, architecture, input_size,
    path."""
    from inference.engine import EnsembleEngine
    from inference.member_files import check_member, load_member_file
    from inference.models import ModelVersion
    from inference.preprocessing import resolve_config

    cfg = resolve_config(preprocessing)
    models = [load_member_file(m["path"]) for m in members]
    names = [m["name"] for m in members]
    for model, m in zip(models, members, strict=True):
        check_member(model, m, class_names)
    unsaved = ModelVersion(
        members=[{k: v for k, v in m.items() if k != "path"} for m in members],
        preprocessing=cfg,
        class_names=list(class_names),
    )
    return EnsembleEngine.from_models(unsaved, models, names, cfg)


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
        metrics["plots"] = plots.write_plots(evaluation, class_names, Path(out_dir), prefix=prefix)
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
    from inference.decoding import decode_image
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


# --- Evaluating a registered version on any labelled folder -----------------------------------


def foreign_run_reason(version, ctx) -> str | None:
    """Why run ``ctx``'s split is not the one ``version`` was trained and tested on (``None``
    when it is, or when the version records nothing to compare). Versions registered since the
    split's digest was recorded compare it; older ones their data fingerprint and split seed."""
    trained = (version.metrics or {}).get("test_set") or {}
    if trained.get("split_sha256"):
        if trained["split_sha256"] != ctx.split.digest(ctx.manifest):
            return "its split differs from the one the version was evaluated on when registered"
        return None
    seed = trained.get("split_seed")
    if seed is not None and int(seed) != int(ctx.split.seed):
        return f"the run was split with seed {ctx.split.seed}, the version's run with seed {seed}"
    fingerprint = ctx.config.get("data_fingerprint", "")[:64]
    if version.data_fingerprint and fingerprint and version.data_fingerprint != fingerprint:
        return "the run's images are not the ones the version was trained on"
    return None


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
    foreign_run: bool = False,
) -> dict:
    """Score a registered version (``EnsembleEngine.from_version``: the worker's loading code,
    artifacts fetched from storage and sha256-checked) on a labelled folder, or on one split of
    a run folder (``run_dir``/``split``; ``segmented`` takes the Segmented twins). ``tta``
    overrides the version's test-time views (what the version would score with them).

    A run folder's split is held out only from the version that run trained: for another
    version (another seed, another fold) its "test" images may be that version's training
    images, so it is refused (``ValueError``) unless ``foreign_run``, and then labelled so."""
    from inference.engine import EnsembleEngine

    if run_dir is not None:
        ctx = train.open_run(run_dir)
        foreign = foreign_run_reason(version, ctx)
        if foreign and not foreign_run:
            raise ValueError(
                f"The {split} split of run {Path(run_dir).name} is not held out from version "
                f"{version.version}: {foreign}. Its figures would not be held-out figures. Score "
                "the version on a labelled folder (--data-dir), or pass --foreign-run to score "
                "it anyway."
            )
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
        if foreign:
            source += f", NOT held out from version {version.version} ({foreign})"
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
