"""A member's images: loaded and decoded as the engine decodes them, resized as the engine
resizes them, and the stratified subset a member trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_images(paths: list[Path], preprocessing: dict, member_size: int | None = None):
    """Images as the serving engine feeds a member: float32 (N, m, m, 3) in [0, 255].

    ``inference.preprocessing.load_and_prepare`` makes the version's input (S × S); a member
    trained at another size m gets the same ``keras.layers.Resizing`` the fused serving model
    puts in front of it (``inference.fused.build_fused_model``).
    """
    from inference.preprocessing import load_and_prepare

    size = preprocessing["input_size"]
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = load_and_prepare(p, preprocessing)
    if member_size is None or member_size == size:
        return out.astype(np.float32)
    return resize_like_engine(out, member_size, preprocessing["interpolation"])


def resize_like_engine(images: np.ndarray, size: int, interpolation: str, batch: int = 256):
    import keras

    from inference.fused import member_resizing

    layer = member_resizing(size, int(images.shape[1]), interpolation)
    chunks = [
        keras.ops.convert_to_numpy(layer(images[i : i + batch].astype(np.float32)))
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(chunks).astype(np.float32)


def stratified_subset(indices: list[int], labels: np.ndarray, fraction: float, seed: int):
    if fraction >= 1.0:
        return list(indices)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels[indices]):
        idx = [i for i in indices if labels[i] == c]
        n = max(1, round(len(idx) * fraction))
        keep += rng.choice(idx, size=n, replace=False).tolist()
    return sorted(keep)


def training_crop(member: dict) -> int | None:
    """The side of the random window a member trains on, or None (the whole image)."""
    crop = member.get("train_crop")
    if not crop or int(crop) >= int(member["input_size"]):
        return None
    return int(crop)
