"""Fit a version's out-of-domain detector (``inference.ood``): on the training split, through
the fused serving model, thresholded on the validation split.

* The training split is run through the fused model with a single view (no test-time flips):
  the class means and the shared covariance of every member's pooled features, and the
  Gaussian of the image statistics, are estimated there (Ledoit-Wolf shrinkage, since
  NASNetLarge alone has 4,032 features and the split about 1,800 images).
* The validation split is run exactly as the worker serves it (the version's test-time views,
  the same single fused call): every member's distance scale (its median) and both
  thresholds come from there, as the ``pass_quantile`` of each score, so at least that share
  of in-domain validation images passes each test.

Single-view training features keep the fit inside the retrain's hour (the flips would cost four
times as much); the thresholds, which decide what is flagged, are set on served features.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference import ood as ood_mod
from inference import preprocessing

logger = logging.getLogger("ml_training")


@dataclass
class Outputs:
    """What the fused model gives for a list of images: probabilities, features, statistics."""

    probs: np.ndarray  # (N, members, classes)
    features: np.ndarray  # (N, sum D)
    statistics: np.ndarray  # (N, K)
    seconds: float


def engine_outputs(engine, paths, *, batch_size: int = 32, progress: bool = False) -> Outputs:
    """Run ``engine`` (its own preprocessing and test-time views) over image files."""
    import time

    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths]
    probs, features, stats = [], [], []
    t0 = time.time()
    with tqdm(total=len(paths), desc="features", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            batch = preprocessing.prepare_batch(chunk, engine.preprocessing)
            p, f = engine.predict(batch)
            if f is None:
                raise ValueError("the members expose no pooled features (no avg_pool layer)")
            probs.append(p)
            features.append(f)
            stats.append(ood_mod.image_statistics(batch))
            bar.update(len(chunk))
    return Outputs(
        np.concatenate(probs), np.concatenate(features), np.concatenate(stats), time.time() - t0
    )


def single_view(engine):
    """The same members fused without test-time views (a new graph, the same weights); the
    engine itself (in batches of 64) when it already serves a single view."""
    from inference.engine import EnsembleEngine

    if engine.preprocessing.get("tta", "none") == "none":
        return dataclasses.replace(engine, batch_size=64)
    cfg = {**engine.preprocessing, "tta": "none"}
    return EnsembleEngine.from_models(
        engine.version, engine.member_models, engine.member_names, cfg, batch_size=64
    )


def fit_gaussian(x: np.ndarray) -> ood_mod.Gaussian:
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(np.asarray(x, dtype=np.float64))
    return ood_mod.Gaussian(mean=lw.location_, precision=lw.precision_)


def fit_member(name: str, features: np.ndarray, labels: np.ndarray, classes: int, val_features):
    """Class means and the shared (class-centred, Ledoit-Wolf) precision of one member, fitted
    on its training ``features``; its scale is the median distance of ``val_features``."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, dtype=np.float64)
    present = [c for c in range(classes) if np.any(labels == c)]
    means = np.stack([f[labels == c].mean(axis=0) for c in present])
    centred = f - means[np.searchsorted(present, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    member = ood_mod.MemberGaussian(name, means.astype(np.float32), precision.astype(np.float32), 1)
    return dataclasses.replace(member, val_median=float(np.median(member.distances(val_features))))


def fit_detector(
    engine,
    train_paths,
    train_labels,
    val: Outputs,
    *,
    feature_pass: float = ood_mod.DEFAULT_FEATURE_PASS,
    statistics_pass: float = ood_mod.DEFAULT_STATISTICS_PASS,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[ood_mod.OODDetector, dict]:
    """The detector and its config (method, quantiles, thresholds, validation figures).

    ``engine``: the serving engine of the members (features on); ``val``: its outputs on the
    validation split (``engine_outputs``).
    """
    train = engine_outputs(
        single_view(engine), train_paths, batch_size=batch_size, progress=progress
    )
    labels = np.asarray(train_labels)
    dims = engine.feature_dims
    val_parts = ood_mod.split_features(val.features, dims)
    members = [
        fit_member(name, f, labels, len(engine.class_names), v)
        for name, f, v in zip(
            engine.member_names,
            ood_mod.split_features(train.features, dims),
            val_parts,
            strict=True,
        )
    ]
    statistics = fit_gaussian(train.statistics)
    draft = ood_mod.OODDetector(members, statistics, 1.0, 1.0)
    feature_t = _quantile(draft.feature_scores(val_parts), feature_pass)
    statistics_t = _quantile(statistics.distances(val.statistics), statistics_pass)
    stained = train.statistics[:, ood_mod.STATISTICS.index("stained share")]
    floor = 0.5 * float(stained.min())
    detector = ood_mod.OODDetector(members, statistics, feature_t, statistics_t, {}, floor)
    scores = detector.score(val_parts, val.statistics)
    config = {
        "method": ood_mod.METHOD,
        "feature_pass_quantile": feature_pass,
        "statistics_pass_quantile": statistics_pass,
        "feature_threshold": feature_t,
        "statistics_threshold": statistics_t,
        "min_stained_share": floor,
        "members": engine.member_names,
        "statistics": list(ood_mod.STATISTICS),
        "train_images": len(labels),
        "train_views": "single view (no test-time flips)",
        "val_images": len(val.features),
        "val_flagged": int(scores.flagged.sum()),
        "val_pass_share": round(float(1 - scores.flagged.mean()), 4),
        "fit_seconds": round(train.seconds, 1),
    }
    detector = dataclasses.replace(detector, config=config)
    logger.info(
        "out-of-domain detector: %d training images; %d of %d validation images flagged "
        "(pass share %.3f)",
        len(labels),
        config["val_flagged"],
        config["val_images"],
        config["val_pass_share"],
    )
    return detector, config


def _quantile(values: np.ndarray, q: float) -> float:
    """The smallest observed value with at least ``q`` of ``values`` at or below it."""
    return float(np.quantile(np.asarray(values, dtype=np.float64), q, method="higher"))
