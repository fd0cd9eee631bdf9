"""HSV / Otsu segmentation of smear fields, like the dataset's ``Segmented/`` tree (OpenCV only).

The dataset authors segmented the stained white cells with an HSV colour threshold and blacked
out everything else (background, red cells). This module does the same, with Otsu's method
choosing the threshold per image so a stain batch that is lighter or darker still segments:

1. optional Gaussian blur (``blur``, odd kernel side; 0 = none);
2. RGB → HSV and a per-pixel "stain" score: ``channel="s*inv_g"`` (default) is the geometric
   mean of the HSV saturation and the inverted green channel (the purple nuclei absorb green);
   ``"s"`` is the saturation alone, ``"inv_g"`` the inverted green alone, ``"s*v_inv"``
   saturation times darkness;
3. Otsu threshold on the score (optionally restricted to a hue window, ``hue_range`` in OpenCV's
   0..179 scale, which wraps when low > high). With ``otsu_levels=2`` (default) Otsu runs a
   second time on the pixels above the first threshold: the first split separates the
   background from every cell, the second the stained white cells from the pale red cells;
4. morphological opening (``open``) and closing (``close``), hole filling, removal of connected
   components smaller than ``min_area`` pixels;
5. ``segment`` returns the RGB image with every pixel outside the mask set to black.

Pixel-sized parameters refer to the working resolution ``inference.preprocessing`` segments at
(``working_size`` in the config, 224 for the Taleqani tiles).

``mask_from_segmented`` reads a mask back from a ``Segmented/`` image (non-black pixels) and
``mask_iou`` compares two masks; ``ml_training`` reports the mean IoU over the data set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

METHODS = ("hsv_otsu",)
CHANNELS = ("s*inv_g", "s", "inv_g", "s*v_inv")

DEFAULTS: dict[str, Any] = {
    "method": "hsv_otsu",
    "channel": "s*inv_g",  # s*inv_g | s | inv_g | s*v_inv
    "otsu_levels": 2,  # 1: background vs rest; 2: then stained cells vs pale red cells
    "blur": 5,
    "hue_range": None,  # e.g. [110, 170]; None = every hue
    "open": 3,
    "close": 5,
    "fill_holes": True,
    "min_area": 40,
}


def resolve(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Complete a segmentation config with the defaults; ValueError on unknown keys or values."""
    cfg = dict(DEFAULTS)
    if config:
        unknown = sorted(set(config) - set(DEFAULTS) - {"working_size"})
        if unknown:
            raise ValueError(f"unknown segmentation key(s) {unknown}; allowed: {sorted(DEFAULTS)}")
        cfg.update({k: v for k, v in config.items() if k != "working_size"})
    if cfg["method"] not in METHODS:
        raise ValueError(f"unknown segmentation method {cfg['method']!r}; choose one of {METHODS}")
    if cfg["channel"] not in CHANNELS:
        raise ValueError(
            f"unknown segmentation channel {cfg['channel']!r}; choose one of {CHANNELS}"
        )
    if int(cfg["otsu_levels"]) not in (1, 2):
        raise ValueError("segmentation otsu_levels must be 1 or 2")
    for key in ("blur", "open", "close", "min_area"):
        if int(cfg[key]) < 0:
            raise ValueError(f"segmentation {key} must be >= 0")
    return cfg


def _score(rgb: np.ndarray, cfg: dict) -> np.ndarray:
    img = rgb
    k = int(cfg["blur"])
    if k > 1:
        k += 1 - k % 2  # odd
        img = cv2.GaussianBlur(img, (k, k), 0)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    s = hsv[..., 1].astype(np.float32)
    inv_g = 255.0 - img[..., 1].astype(np.float32)
    channel = cfg["channel"]
    if channel == "s":
        score = s
    elif channel == "inv_g":
        score = inv_g
    elif channel == "s*inv_g":
        score = np.sqrt(s * inv_g)
    else:
        score = np.sqrt(s * (255.0 - hsv[..., 2].astype(np.float32)))
    return np.clip(score, 0, 255).astype(np.uint8), hsv[..., 0]


def mask(rgb_uint8: np.ndarray, config: Mapping[str, Any] | None = None) -> np.ndarray:
    """Boolean (H, W) mask of the stained cells in a uint8 RGB image."""
    rgb = np.ascontiguousarray(np.asarray(rgb_uint8))
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    cfg = resolve(config)
    score, hue = _score(rgb, cfg)
    valid = np.ones(score.shape, dtype=bool)
    if cfg["hue_range"]:
        lo, hi = (int(v) for v in cfg["hue_range"])
        valid = (hue >= lo) & (hue <= hi) if lo <= hi else (hue >= lo) | (hue <= hi)
    values = score[valid]
    if values.size == 0 or int(values.max()) == int(values.min()):
        return np.zeros(score.shape, dtype=bool)
    threshold = _otsu(values)
    if int(cfg["otsu_levels"]) == 2:
        upper = values[values > threshold]
        if upper.size >= 16 and int(upper.max()) > int(upper.min()):
            threshold = _otsu(upper)
    m = ((score > threshold) & valid).astype(np.uint8)
    if int(cfg["open"]) > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(cfg["open"]),) * 2)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
    if int(cfg["close"]) > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(cfg["close"]),) * 2)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    if cfg["fill_holes"]:
        m = _fill_holes(m)
    if int(cfg["min_area"]) > 0:
        m = _remove_small(m, int(cfg["min_area"]))
    return m.astype(bool)


def _otsu(values: np.ndarray) -> float:
    threshold, _ = cv2.threshold(
        np.ascontiguousarray(values.reshape(-1, 1)), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    return float(threshold)


def segment(rgb_uint8: np.ndarray, config: Mapping[str, Any] | None = None) -> np.ndarray:
    """The image with everything outside :func:`mask` blacked out: uint8 RGB, same shape."""
    rgb = np.asarray(rgb_uint8)
    m = mask(rgb, config)
    out = np.zeros_like(rgb)
    out[m] = rgb[m]
    return out


def _fill_holes(m: np.ndarray) -> np.ndarray:
    h, w = m.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = m
    flood = padded.copy()
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (m.astype(bool) | holes).astype(np.uint8)


def _remove_small(m: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels].astype(np.uint8)


# --- Comparison with a reference segmentation --------------------------------------------------


def mask_from_segmented(rgb_uint8: np.ndarray, threshold: int = 30) -> np.ndarray:
    """The mask of a reference segmented image: pixels whose brightest channel exceeds
    ``threshold`` (JPEG noise leaves the black background slightly above zero)."""
    return np.asarray(rgb_uint8).max(axis=2) > threshold


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)
