"""The out-of-domain detector of a model version: is this image like the ones it was trained on?

NumPy only (no TensorFlow): the worker scores with it, training fits it
(``ml_training.ood_fit``) and tests can build one by hand.

Two tests, both fitted on the version's training split and thresholded on its validation split:

* **Features** (Lee et al., 2018, "A simple unified framework for detecting out-of-distribution
  samples and adversarial attacks"): for every member, the squared Mahalanobis distance of the
  image's pooled features (the ``avg_pool`` layer, averaged over the test-time views exactly as
  the fused serving model computes them) to the nearest class mean, under one covariance shared
  by the classes (Ledoit-Wolf shrinkage, since a member has more features than the split has
  images). Each member's distance is divided by its median on the validation split; the
  feature score is the geometric mean of these ratios over the members, so no member's scale
  dominates and an image that only one member finds odd counts less than one they all do.
* **Colour and texture** (``inference.preprocessing.image_statistics``): the Mahalanobis
  distance of a few image statistics (CIE Lab means and spreads, edge strength, share of
  stained pixels) to their training distribution. It catches what is not a stained smear at
  all (a document, a screenshot, a photo, an empty field) without trusting the networks'
  features on inputs they were never meant to see.

Each test's threshold is the ``pass_quantile`` of its score on the validation split, so at
least that share of in-domain validation images passes. One floor completes the image test:
every training field shows a stained cell, so a field with less than half the smallest stained
share of the training split (an empty, overexposed field; a page of text) is outside the domain
however ordinary its colours are otherwise. The stored ``ood_score`` is the larger
of the two scores divided by its threshold: 1 is the threshold, above 1 is outside the domain.

The arrays live in one ``.npz`` file registered with the version (checksummed like the
members); the small config (method, thresholds, quantiles, the validation figures) is stored
on the version too (``ModelVersion.ood``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

METHOD = "mahalanobis-features+image-statistics/v1"
DEFAULT_FEATURE_PASS = 0.98
DEFAULT_STATISTICS_PASS = 0.995


@dataclass(frozen=True)
class MemberGaussian:
    """Class means (C, D) and the shared precision matrix (D, D) of one member's features,
    float32 (NASNetLarge: 4032 features, a 65 MB matrix)."""

    name: str
    means: np.ndarray
    precision: np.ndarray
    val_median: float  # median of the member's validation distances: the member's scale

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean, per image: (N,).

        The differences to every class mean go through one matrix product: for a worker's
        small batch the product is bound by reading the precision matrix, once here instead
        of once per class (v1, a batch of 6: 38 ms before, four reads)."""
        f = np.asarray(features, dtype=np.float32)
        diff = (f[None, :, :] - self.means[:, None, :]).reshape(-1, f.shape[1])  # (C*N, D)
        out = np.einsum("nd,nd->n", diff @ self.precision, diff, dtype=np.float64)
        return np.maximum(out.reshape(len(self.means), len(f)), 0.0).min(axis=0)


@dataclass(frozen=True)
class Gaussian:
    """One Gaussian (mean (K,), precision (K, K)) over the image statistics."""

    mean: np.ndarray
    precision: np.ndarray

    def distances(self, x: np.ndarray) -> np.ndarray:
        d = np.asarray(x, dtype=np.float64) - self.mean
        return np.einsum("nk,kl,nl->n", d, self.precision, d)


# The detector's two tests, as ``OODScores.parts`` names them (``ood_parts`` in results).
PARTS = ("features", "image")


@dataclass(frozen=True)
class OODScores:
    """Per image: the score (1 = threshold), whether it is out of domain, and both parts."""

    score: np.ndarray
    flagged: np.ndarray
    features: np.ndarray  # feature score / its threshold
    statistics: np.ndarray  # image-statistics score / its threshold

    def parts(self, i: int) -> dict[str, float]:
        """Each test's score over its threshold, under the names of ``PARTS``."""
        return dict(zip(PARTS, (float(self.features[i]), float(self.statistics[i])), strict=True))


@dataclass(frozen=True)
class OODDetector:
    members: list[MemberGaussian]
    statistics: Gaussian
    feature_threshold: float  # on the geometric mean of the members' distance ratios
    statistics_threshold: float  # on the image statistics' distance
    config: dict[str, Any] = field(default_factory=dict)
    min_stained_share: float = 0.0  # the floor of the "stained share" statistic (0: none)

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def feature_dims(self) -> list[int]:
        return [int(m.means.shape[1]) for m in self.members]

    def feature_scores(self, features: list[np.ndarray]) -> np.ndarray:
        """Geometric mean over members of distance / validation median: (N,)."""
        if len(features) != len(self.members):
            raise ValueError(
                f"expected features of {len(self.members)} members, got {len(features)}"
            )
        logs = [
            np.log(np.maximum(m.distances(f), 1e-12) / m.val_median)
            for m, f in zip(self.members, features, strict=True)
        ]
        return np.exp(np.mean(logs, axis=0))

    def score(self, features: list[np.ndarray], statistics: np.ndarray) -> OODScores:
        """Score a batch: ``features`` one (N, D_m) array per member (in ``member_names``
        order), ``statistics`` (N, K) from ``preprocessing.image_statistics``."""
        feat = self.feature_scores(features) / self.feature_threshold
        stat = self.statistics.distances(statistics) / self.statistics_threshold
        if self.min_stained_share > 0:
            share = np.asarray(statistics, dtype=np.float64)[:, STATISTICS.index("stained share")]
            floor = self.min_stained_share / np.maximum(share, self.min_stained_share / 100)
            stat = np.maximum(stat, floor)  # above 1 below the floor, at most 100
        score = np.maximum(feat, stat)
        return OODScores(score=score, flagged=score > 1.0, features=feat, statistics=stat)

    # --- Storage: one .npz ----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "stat_mean": self.statistics.mean,
            "stat_precision": self.statistics.precision,
            "thresholds": np.array(
                [self.feature_threshold, self.statistics_threshold, self.min_stained_share]
            ),
            "member_names": np.array(self.member_names),
            "val_medians": np.array([m.val_median for m in self.members]),
        }
        for i, m in enumerate(self.members):
            arrays[f"means_{i}"] = m.means.astype(np.float32)
            arrays[f"precision_{i}"] = m.precision.astype(np.float32)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_file(cls, path, config: dict[str, Any] | None = None) -> OODDetector:
        """Load the ``.npz`` written by ``to_bytes``; ValueError when it is not one."""
        try:
            with np.load(path, allow_pickle=False) as z:
                names = [str(n) for n in z["member_names"]]
                members = [
                    MemberGaussian(
                        name=name,
                        means=z[f"means_{i}"].astype(np.float32),
                        precision=z[f"precision_{i}"].astype(np.float32),
                        val_median=float(z["val_medians"][i]),
                    )
                    for i, name in enumerate(names)
                ]
                stats = Gaussian(mean=z["stat_mean"], precision=z["stat_precision"])
                thresholds = [float(t) for t in z["thresholds"]]
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"not an out-of-domain detector file: {exc}") from exc
        floor = thresholds[2] if len(thresholds) > 2 else 0.0
        return cls(members, stats, thresholds[0], thresholds[1], dict(config or {}), floor)


STATISTICS = (
    "L mean",
    "a mean",
    "b mean",
    "L spread",
    "a spread",
    "b spread",
    "edge strength",
    "stained share",
)


def image_statistics(batch: np.ndarray) -> np.ndarray:
    """Colour and texture statistics of a prepared batch (N, S, S, 3), RGB in [0, 255]:
    (N, 8) in the order of ``STATISTICS``.

    CIE Lab means and standard deviations (L in 0..100), the mean Sobel gradient magnitude of
    L (edges: text and screenshots have sharp ones, an empty field none), and the share of
    pixels stained violet (a* - b* > 25: the nuclei of a Romanowsky-type stain).
    """
    batch = np.asarray(batch, dtype=np.float32)
    out = np.empty((len(batch), len(STATISTICS)), dtype=np.float64)
    for i, rgb in enumerate(batch):
        # OpenCV's own reductions (double accumulators): with NumPy's, a worker's batch of 6
        # spent 23 ms here, now 4 ms.
        lab = cv2.cvtColor(np.clip(rgb, 0, 255) / 255.0, cv2.COLOR_RGB2Lab)
        mean, std = cv2.meanStdDev(lab)
        gx = cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1, ksize=3)
        violet = cv2.compare(cv2.subtract(lab[..., 1], lab[..., 2]), 25.0, cv2.CMP_GT)
        out[i, 0:3] = mean.ravel()
        out[i, 3:6] = std.ravel()
        out[i, 6] = cv2.mean(cv2.magnitude(gx, gy))[0]
        out[i, 7] = cv2.countNonZero(violet) / violet.size
    return out


def split_features(flat: np.ndarray, dims: list[int]) -> list[np.ndarray]:
    """Cut the fused model's concatenated features (N, sum D) into one array per member."""
    edges = np.cumsum([0, *dims])
    if flat.shape[1] != edges[-1]:
        raise ValueError(f"expected {edges[-1]} feature columns, got {flat.shape[1]}")
    return [flat[:, a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
