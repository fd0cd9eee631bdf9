"""The review threshold: below which top mean probability a result goes to a person.

Chosen on the validation split, never on the test split: the smallest threshold ``t`` such that,
among the validation images whose top mean ensemble probability is at least ``t``, the voted
ensemble is right for at least ``TARGET_ACCURACY`` of them. The candidates are the images' own
confidences, so the set above a candidate is a prefix of the images sorted by confidence, ties
included; of the candidates that reach the target the smallest (the one that sends the fewest
images to review) wins. When not even the most confident images reach the target, the threshold
is the highest confidence seen and ``target_met`` is false: nearly everything is flagged.

The figures stored with it (``metrics["review_threshold"]``)::

    {"value", "target_accuracy", "target_met", "split": "validation", "confidence",
     "validation_images", "above_threshold", "correct_above", "accuracy_above",
     "accuracy_above_ci95": [low, high], "interval", "coverage", "below_threshold",
     "accuracy_below"}

``accuracy_above_ci95`` is the 95% Wilson score interval of the accuracy above the threshold:
with a few hundred validation images an observed 1.0 still allows a true accuracy of ~0.98.
The validation split also chose each member's best epoch and calibration, so the observed
accuracy above the threshold is optimistic; the test split is the place to check it.

Pure NumPy: no Django, no TensorFlow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

TARGET_ACCURACY = 0.99
Z_95 = 1.959963984540054  # two-sided 95% normal quantile
_EPS = 1e-12  # 99 right of 100 is "at least 0.99" whatever the float rounding

logger = logging.getLogger("ml_training")


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> list[float] | None:
    """The Wilson score interval of a proportion ``successes / trials`` (None for no trials)."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} must lie between 0 and trials {trials}")
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def choose_threshold(
    confidence: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    *,
    target: float = TARGET_ACCURACY,
    split: str = "validation",
) -> dict:
    """The review threshold and its figures from each image's top mean probability
    (``confidence``) and whether the voted label was right (``correct``)."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    right = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != right.shape:
        raise ValueError(f"{conf.size} confidences but {right.size} correctness flags")
    if not conf.size:
        raise ValueError("no images to choose a review threshold on")
    if not np.all(np.isfinite(conf)) or conf.min() < 0 or conf.max() > 1:
        raise ValueError("confidences must be probabilities between 0 and 1")
    if not 0 < target <= 1:
        raise ValueError(f"target accuracy {target} must lie in (0, 1]")

    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    right_so_far = np.cumsum(right[order])
    # The last position of each run of equal confidences: a threshold keeps ties together.
    ends = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True])
    reaching = ends[right_so_far[ends] >= target * (ends + 1) - _EPS]
    target_met = bool(reaching.size)
    end = int(reaching[-1]) if target_met else int(ends[0])
    value = float(sorted_conf[end])

    n = int(conf.size)
    above = conf >= value
    n_above = int(above.sum())
    correct_above = int(right[above].sum())
    n_below = n - n_above
    return {
        "value": value,
        "target_accuracy": float(target),
        "target_met": target_met,
        "split": split,
        "confidence": "top mean ensemble probability",
        "validation_images": n,
        "above_threshold": n_above,
        "correct_above": correct_above,
        "accuracy_above": correct_above / n_above,
        "accuracy_above_ci95": wilson_interval(correct_above, n_above),
        "interval": "Wilson score, 95%",
        "coverage": n_above / n,
        "below_threshold": n_below,
        "accuracy_below": float(right[~above].mean()) if n_below else None,
    }


def from_results(results, labels, class_names, *, target: float = TARGET_ACCURACY) -> dict | None:
    """``choose_threshold`` on the engine's ``EnsembleResult`` list and the true class indices
    (None, with a warning, when there are no images): the confidence is the highest mean
    probability, and a result is right when the vote's label is the truth."""
    if len(results) != len(labels):
        raise ValueError(f"{len(results)} results but {len(labels)} labels")
    if not len(results):
        logger.warning("no validation images: no review threshold is chosen")
        return None
    confidence = [max(r.probabilities.values()) for r in results]
    correct = [r.label == class_names[int(y)] for r, y in zip(results, labels, strict=True)]
    return choose_threshold(confidence, correct, target=target)


def threshold_value(metrics: dict | None) -> float | None:
    """The threshold recorded in a metrics dict (``metrics["review_threshold"]["value"]``)."""
    figures = (metrics or {}).get("review_threshold")
    value = figures.get("value") if isinstance(figures, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def summary(figures: dict | None) -> str:
    """One sentence for the log and the evaluation report."""
    if not figures:
        return "none (no validation images)"
    ci = figures.get("accuracy_above_ci95") or [float("nan"), float("nan")]
    below = figures.get("accuracy_below")
    missed = "" if figures["target_met"] else " (target NOT met even by the most confident)"
    return (
        f"{figures['value']:.4f}, chosen on the {figures['split']} split for accuracy >= "
        f"{figures['target_accuracy']:.2f}{missed}: above it {figures['above_threshold']} of "
        f"{figures['validation_images']} images (coverage {figures['coverage']:.1%}), accuracy "
        f"{figures['accuracy_above']:.4f} (95% CI {ci[0]:.4f}-{ci[1]:.4f}); below it "
        + ("none" if below is None else f"accuracy {below:.4f}")
    )


def markdown_lines(figures: dict | None) -> list[str]:
    """The threshold as a paragraph of the evaluation report (nothing if none was chosen)."""
    return ["", f"Review threshold: {summary(figures)}."] if figures else []
