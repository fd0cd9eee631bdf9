"""One preprocessing pipeline for training and serving, driven by a config dict on each version.

No TensorFlow here (NumPy, Pillow and OpenCV only): the web process may import this module.

The config is a small timm-style dict (``timm.data.resolve_data_config`` is the model)::

    {
        "input_size": 128,                       # square side S the members' input is resized to
        "interpolation": "area",                 # area | bilinear | bicubic | nearest | lanczos
        "contrast": {"method": "none"},          # none | clahe | stretch (see CONTRAST_DEFAULTS)
        "segmentation": None,                    # None, or a dict for inference.segmentation
        "tta": "none",                           # none | flips (test-time views, see TTA_VIEWS)
    }

A :class:`~inference.models.ModelVersion` stores the resolved dict in ``preprocessing``; serving
reads it from the version only, so a model always sees what it was trained on.

Pipeline (``load_and_prepare``)::

    bytes/path/file ─ decode_image ─► uint8 RGB (H, W, 3), EXIF-oriented, any mode → RGB
                    ─ prepare ──────► resize to W×W (W = working size, see below; squash, no crop)
                                      → contrast (on the W×W image)
                                      → segmentation (on the W×W image), when configured
                                      → resize to S×S when W != S
                                      → uint8 (S, S, 3)

Where segmentation runs: at a *fixed* working resolution, never at the upload's resolution, so
its pixel-sized parameters (kernels, minimum areas) mean the same thing for every image whatever
the microscope camera. The working size is ``segmentation["working_size"]`` when the config sets
it (the resolution the segmentation was tuned for, e.g. 224 for the original 224×224 smear tiles);
otherwise the model's ``input_size``. ``working_size`` is consumed here and not passed on to
``inference.segmentation.segment``. Contrast runs at the same working resolution, before
segmentation. Every step is deterministic (no randomness; augmentation belongs to training).

Input scaling to each architecture's range is *not* done here: every member model starts with an
``inference.layers.InputScaling`` layer, so members are fed the same float32 batch in [0, 255]
(``prepare_batch``). ``scale_numpy`` is the NumPy twin of that layer, for tests and analysis.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from inference.decoding import ImageSource, decode_image

# File suffixes read as images wherever a folder is walked (training data, classify_folder).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

CONFIG_KEYS = ("input_size", "interpolation", "contrast", "segmentation", "tta")

DEFAULT_CONFIG: dict[str, Any] = {
    "input_size": 128,
    "interpolation": "area",
    "contrast": {"method": "none"},
    "segmentation": None,
    "tta": "none",
}

# Test-time augmentation: the views of each prepared image that every member is run on, as
# (flip rows, flip columns) pairs; a member's probabilities are averaged over the views before
# the vote. ``flips`` adds the vertical, horizontal and double flip: training flips both ways
# and a smear field has no up or left. Serving applies the views inside the fused model
# (``inference.engine``); ``tta_views`` is the NumPy twin.
TTA_VIEWS: dict[str, tuple[tuple[bool, bool], ...]] = {
    "none": ((False, False),),
    "flips": ((False, False), (True, False), (False, True), (True, True)),
}

INTERPOLATIONS = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
    "lanczos": cv2.INTER_LANCZOS4,
}
_INTERPOLATION_ALIASES = {"linear": "bilinear", "cubic": "bicubic", "lanczos4": "lanczos"}

# Every contrast method with its parameters and their defaults.
CONTRAST_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    # CLAHE on the L channel of CIE LAB: local contrast without shifting the stain colours.
    "clahe": {"clip_limit": 2.0, "tile_grid": 8},
    # Percentile stretch: the ``low``/``high`` percentiles map to 0/255, clipped. Over all three
    # channels together by default (keeps the colour balance); per channel if ``per_channel``.
    "stretch": {"low": 1.0, "high": 99.0, "per_channel": False},
}

MIN_INPUT_SIZE = 8
MAX_INPUT_SIZE = 1024

# keras.applications' own ``preprocess_input`` mode for each architecture.
ARCHITECTURE_SCALING: dict[str, str] = {
    "ResNet50": "caffe",
    "VGG16": "caffe",
    "MobileNetV2": "tf",
    "Xception": "tf",
    "NASNetLarge": "tf",
}
SCALING_MODES = ("tf", "caffe", "torch")
# The constants of keras.applications.imagenet_utils (caffe means are BGR, torch stats are RGB).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)


# --- Config ---------------------------------------------------------------------------------


def resolve_config(
    *overrides: Mapping[str, Any] | None, defaults: Mapping[str, Any] = DEFAULT_CONFIG
) -> dict[str, Any]:
    """Merge configs, validate them and return a complete, normalised, JSON-ready dict.

    Priority is left to right, like ``timm.data.resolve_data_config(args, pretrained_cfg)``: the
    FIRST mapping that sets a key wins, then the next, and ``defaults`` fill what is left::

        resolve_config(cli_args, version.preprocessing)   # explicit > model config > defaults

    A key whose value is ``None`` counts as "not set" (so argparse namespaces-as-dicts work);
    disable segmentation explicitly with ``"segmentation": False``. ``None`` mappings are
    skipped. ``contrast`` may be a dict with a ``method`` or just the method name; it is taken
    whole from the winning mapping and completed with that method's default parameters.

    Raises ``ValueError`` naming the offending key on an unknown key or a bad value.
    """
    merged: dict[str, Any] = {}
    for source in (*overrides, defaults):
        if source is None:
            continue
        if not isinstance(source, Mapping):
            raise ValueError(f"preprocessing config must be a mapping, got {type(source).__name__}")
        unknown = sorted(set(source) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown preprocessing key(s) {unknown}; allowed: {list(CONFIG_KEYS)}"
            )
        for key, value in source.items():
            if key not in merged and value is not None:
                merged[key] = value
    for key in CONFIG_KEYS:
        merged.setdefault(key, None)
    return {
        "input_size": _validate_input_size(merged["input_size"]),
        "interpolation": _validate_interpolation(merged["interpolation"]),
        "contrast": _validate_contrast(merged["contrast"]),
        "segmentation": _validate_segmentation(merged["segmentation"]),
        "tta": _validate_tta(merged["tta"]),
    }


def _validate_tta(value: Any) -> str:
    if value is False:
        return "none"
    if not isinstance(value, str) or value.lower() not in TTA_VIEWS:
        raise ValueError(f"unknown tta {value!r}; choose one of {sorted(TTA_VIEWS)}")
    return value.lower()


def _validate_input_size(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        # Accept timm's (3, H, W) or an (H, W) pair when square, for convenience.
        dims = list(value[1:]) if len(value) == 3 and value[0] == 3 else list(value)
        if len(dims) != 2 or dims[0] != dims[1]:
            raise ValueError(f"input_size must be one side length (square), got {value!r}")
        value = dims[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"input_size must be an integer, got {value!r}")
    if not MIN_INPUT_SIZE <= int(value) <= MAX_INPUT_SIZE:
        raise ValueError(
            f"input_size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE} pixels, got {value}"
        )
    return int(value)


def _validate_interpolation(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"interpolation must be a string, got {value!r}")
    name = _INTERPOLATION_ALIASES.get(value.lower(), value.lower())
    if name not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {value!r}; choose one of {sorted(INTERPOLATIONS)}")
    return name


def _validate_contrast(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, Mapping) or "method" not in value:
        raise ValueError(
            f'contrast must be a dict with a "method" (one of {sorted(CONTRAST_DEFAULTS)}), '
            f"got {value!r}"
        )
    method = str(value["method"]).lower()
    if method not in CONTRAST_DEFAULTS:
        raise ValueError(
            f"unknown contrast method {value['method']!r}; choose one of "
            f"{sorted(CONTRAST_DEFAULTS)}"
        )
    params = {k: v for k, v in value.items() if k != "method"}
    unknown = sorted(set(params) - set(CONTRAST_DEFAULTS[method]))
    if unknown:
        allowed = sorted(CONTRAST_DEFAULTS[method]) or "none"
        raise ValueError(
            f"unknown parameter(s) {unknown} for contrast method {method!r}; allowed: {allowed}"
        )
    out: dict[str, Any] = {"method": method, **CONTRAST_DEFAULTS[method], **params}
    if method == "clahe":
        clip = out["clip_limit"]
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
            raise ValueError(f"contrast clip_limit must be a number > 0, got {clip!r}")
        out["clip_limit"] = float(clip)
        grid = out["tile_grid"]
        grid_pair = list(grid) if isinstance(grid, (list, tuple)) else [grid, grid]
        if len(grid_pair) != 2 or not all(
            isinstance(g, (int, np.integer)) and not isinstance(g, bool) and 1 <= g <= 64
            for g in grid_pair
        ):
            raise ValueError(
                f"contrast tile_grid must be an integer 1..64 or a pair of them, got {grid!r}"
            )
        out["tile_grid"] = (
            int(grid_pair[0]) if grid_pair[0] == grid_pair[1] else [int(g) for g in grid_pair]
        )
    elif method == "stretch":
        low, high = out["low"], out["high"]
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                raise ValueError(f"contrast {name} must be a percentile 0..100, got {v!r}")
        if not low < high:
            raise ValueError(f"contrast low ({low}) must be below high ({high})")
        out["low"], out["high"] = float(low), float(high)
        out["per_channel"] = bool(out["per_channel"])
    return out


def _validate_segmentation(value: Any) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"segmentation must be null/false or a dict of segmentation parameters, got {value!r}"
        )
    out = copy.deepcopy(dict(value))
    if "working_size" in out:
        try:
            out["working_size"] = _validate_input_size(out["working_size"])
        except ValueError as exc:
            raise ValueError(f"segmentation working_size: {exc}") from None
    return out


# --- Preparing ------------------------------------------------------------------------------


def prepare(rgb: np.ndarray, config: Mapping[str, Any] | None = None) -> np.ndarray:
    """Resize, contrast and (optionally) segment one uint8 RGB image: uint8 (S, S, 3).

    ``config`` is resolved with :func:`resolve_config` (so a partial dict is fine). The image is
    squashed to a square (no crop, no padding): smear tiles are square and training did the same.
    A 2-D greyscale array is accepted and expanded to RGB.
    """
    cfg = resolve_config(config)
    rgb = _check_rgb(rgb)
    size = cfg["input_size"]
    seg = cfg["segmentation"]
    working = seg.get("working_size", size) if seg is not None else size
    interpolation = INTERPOLATIONS[cfg["interpolation"]]

    out = _resize(rgb, working, interpolation)
    out = apply_contrast(out, cfg["contrast"])
    if seg is not None:
        out = _segment(out, {k: v for k, v in seg.items() if k != "working_size"})
    if working != size:
        out = _resize(out, size, interpolation)
    return out


def load_and_prepare(data: ImageSource, config: Mapping[str, Any] | None = None) -> np.ndarray:
    """``decode_image`` then ``prepare``: bytes/path/file to uint8 (S, S, 3)."""
    return prepare(decode_image(data), config)


def prepare_batch(
    items: Iterable[ImageSource | np.ndarray], config: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Prepare many images into one float32 batch (N, S, S, 3) with values in [0, 255].

    Items are encoded images (bytes, paths, file objects) or already decoded uint8 RGB arrays.
    This batch is what every member model takes (each scales it with its own InputScaling).
    """
    cfg = resolve_config(config)
    size = cfg["input_size"]
    items = list(items)
    batch = np.empty((len(items), size, size, 3), dtype=np.float32)
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            batch[i] = prepare(item, cfg)
        else:
            batch[i] = load_and_prepare(item, cfg)
    return batch


def tta_views(batch: np.ndarray, tta: str) -> np.ndarray:
    """The test-time views of a prepared batch (N, S, S, 3): (V, N, S, S, 3), view 0 = as is."""
    batch = np.asarray(batch)
    views = []
    for flip_rows, flip_cols in TTA_VIEWS[tta]:
        view = batch[:, ::-1] if flip_rows else batch
        views.append(view[:, :, ::-1] if flip_cols else view)
    return np.stack(views)


def apply_contrast(rgb: np.ndarray, contrast: Mapping[str, Any]) -> np.ndarray:
    """Apply one resolved contrast step to a uint8 RGB image (returns a new uint8 array)."""
    method = contrast["method"]
    if method == "none":
        return rgb
    if method == "clahe":
        grid = contrast["tile_grid"]
        grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        clahe = cv2.createCLAHE(clipLimit=float(contrast["clip_limit"]), tileGridSize=grid)
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if method == "stretch":
        x = rgb.astype(np.float32)
        axis = (0, 1) if contrast["per_channel"] else None
        lo = np.percentile(x, contrast["low"], axis=axis)
        hi = np.percentile(x, contrast["high"], axis=axis)
        span = np.maximum(hi - lo, 1.0)  # a flat image stays flat instead of dividing by zero
        x = (x - lo) * (255.0 / span)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown contrast method {method!r}")


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _resize(rgb: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


def _segment(rgb: np.ndarray, seg_config: dict[str, Any]) -> np.ndarray:
    # Lazy: inference.segmentation belongs to the training pipeline's owner and is optional.
    try:
        from inference.segmentation import segment
    except ImportError as exc:
        raise RuntimeError(
            "this preprocessing config asks for segmentation but inference.segmentation "
            f"could not be imported ({exc})"
        ) from exc
    out = np.asarray(segment(rgb, seg_config))
    if out.shape != rgb.shape or out.dtype != np.uint8:
        raise ValueError(
            f"inference.segmentation.segment must return uint8 {rgb.shape}, "
            f"got {out.dtype} {out.shape}"
        )
    return np.ascontiguousarray(out)


# --- Input scaling (NumPy twin of inference.layers.InputScaling) -----------------------------


def scaling_mode(architecture: str) -> str:
    """keras.applications' ``preprocess_input`` mode for an architecture (ValueError if unknown)."""
    try:
        return ARCHITECTURE_SCALING[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURE_SCALING)}"
        ) from None


def scale_numpy(x: np.ndarray, mode: str) -> np.ndarray:
    """Scale RGB values in [0, 255] like ``keras.applications.<arch>.preprocess_input``.

    ``"tf"``: to [-1, 1]. ``"caffe"``: RGB→BGR, minus the ImageNet BGR means. ``"torch"``: to
    [0, 1], minus the ImageNet means, divided by the stds. Channels last; returns a new float32
    array (Keras' version modifies float input in place; this one never does).
    """
    if mode not in SCALING_MODES:
        raise ValueError(f"unknown scaling mode {mode!r}; choose one of {list(SCALING_MODES)}")
    x = np.array(x, dtype=np.float32, copy=True)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"expected channels-last RGB input (..., 3), got shape {x.shape}")
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode == "torch":
        x /= 255.0
        x -= np.asarray(TORCH_MEAN_RGB, dtype=np.float32)
        x /= np.asarray(TORCH_STD_RGB, dtype=np.float32)
        return x
    x = np.ascontiguousarray(x[..., ::-1])
    x -= np.asarray(CAFFE_MEAN_BGR, dtype=np.float32)
    return x
