"""Augmentation and class balance for the training split only (tf.data + Keras random layers).

The training stream draws the classes in turn (round robin), each class an endless, reshuffled
repetition of its own images, so every batch holds the classes in equal numbers: the minority
classes are oversampled, and the random layers make the repeats differ. Validation and test
data never pass through here.

Images enter as uint8 arrays already prepared by ``inference.preprocessing`` (the serving
code), so the only difference between training and serving input is the augmentation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Defaults follow the paper's ImageDataGenerator recipe (rotation, shift, shear, zoom, flips),
# plus a mild colour / stain jitter. Factors are Keras layer factors (fractions).
DEFAULT_AUGMENT: dict[str, Any] = {
    "rotation": 0.1,  # fraction of a full turn: ±36°
    "shift": 0.1,  # fraction of height / width
    "shear": 0.1,
    "zoom": 0.1,
    "flip": True,  # horizontal and vertical
    "brightness": 0.1,
    "contrast": 0.1,
    "stain": 0.05,  # per-image, per-channel RGB gain in [1 - s, 1 + s]: cheap stain jitter
    # Keras' RandomSaturation / RandomHue work too but cost ~50 ms per batch of 32 at 128 px
    # each on one CPU core (measured), as much as the four geometric layers together: off.
    "saturation": 0.0,  # RandomSaturation factor offset around 0.5 (0 = off)
    "hue": 0.0,  # RandomHue factor (fraction of the hue circle)
}


def resolve_augment(config: dict | None) -> dict[str, Any]:
    cfg = dict(DEFAULT_AUGMENT)
    if config:
        unknown = set(config) - set(DEFAULT_AUGMENT)
        if unknown:
            raise ValueError(f"unknown augmentation key(s) {sorted(unknown)}")
        cfg.update(config)
    return cfg


def build_augmenter(config: dict | None = None, *, seed: int = 0):
    """A ``keras.Sequential`` of random layers for float images in [0, 255] (training only)."""
    import keras

    cfg = resolve_augment(config)  # "stain" is applied by balanced_train_dataset
    layers = []
    s = iter(range(seed * 100 + 1, seed * 100 + 100))  # one distinct seed per layer
    fill = {"fill_mode": "reflect"}
    if cfg["flip"]:
        layers.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=next(s)))
    if cfg["rotation"]:
        layers.append(keras.layers.RandomRotation(cfg["rotation"], seed=next(s), **fill))
    if cfg["shift"]:
        layers.append(
            keras.layers.RandomTranslation(cfg["shift"], cfg["shift"], seed=next(s), **fill)
        )
    if cfg["shear"]:
        layers.append(keras.layers.RandomShear(cfg["shear"], cfg["shear"], seed=next(s), **fill))
    if cfg["zoom"]:
        layers.append(keras.layers.RandomZoom(cfg["zoom"], cfg["zoom"], seed=next(s), **fill))
    if cfg["brightness"]:
        layers.append(
            keras.layers.RandomBrightness(cfg["brightness"], value_range=(0, 255), seed=next(s))
        )
    if cfg["contrast"]:
        layers.append(
            keras.layers.RandomContrast(cfg["contrast"], value_range=(0, 255), seed=next(s))
        )
    if cfg["saturation"]:
        f = float(cfg["saturation"])
        layers.append(
            keras.layers.RandomSaturation((0.5 - f, 0.5 + f), value_range=(0, 255), seed=next(s))
        )
    if cfg["hue"]:
        layers.append(keras.layers.RandomHue(cfg["hue"], value_range=(0, 255), seed=next(s)))
    return keras.Sequential(layers, name="augment")


def steps_per_epoch(labels: np.ndarray, batch_size: int, num_classes: int) -> int:
    """Batches in one balanced epoch: every class seen as often as the largest one."""
    largest = int(np.bincount(labels, minlength=num_classes).max())
    return max(1, math.ceil(largest * num_classes / batch_size))


def balanced_train_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    num_classes: int,
    augment: dict | None = None,
    augment_enabled: bool = True,
    crop: int | None = None,
):
    """An endless tf.data stream of augmented, class-balanced (image, label) batches.

    ``images`` is (N, S, S, 3) in [0, 255]; batches are float32 in [0, 255]. Deterministic for a
    given seed. Use :func:`steps_per_epoch` for the length of one balanced epoch.

    ``crop``: every image is cut to a random ``crop`` × ``crop`` window (its own window, drawn
    before batching) and the random layers run on the window. A fully convolutional member
    trained on windows of the field at serving scale is served the whole field: it learns the
    cells at full resolution for the cost of a smaller input.
    """
    import tensorflow as tf

    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    present = [c for c in range(num_classes) if np.any(labels == c)]
    if not present:
        raise ValueError("no training images")
    streams = []
    for c in present:
        idx = np.flatnonzero(labels == c)
        ds = tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
        ds = ds.shuffle(len(idx), seed=seed + 7919 * c, reshuffle_each_iteration=True).repeat()
        streams.append(ds)
    order = tf.data.Dataset.range(len(present)).repeat()
    ds = tf.data.Dataset.choose_from_datasets(streams, order)
    if crop:
        size = int(images.shape[1])
        if not 0 < int(crop) <= min(size, int(images.shape[2])):
            raise ValueError(f"crop {crop} does not fit images of {size} px")
        window = tf.constant([int(crop), int(crop), int(images.shape[3])])

        def cut(index, item):
            x, y = item
            # a stream of its own: the random layers draw from seed * 100 + k
            pair = tf.stack([tf.cast(seed, tf.int64) + 104729, index])
            return tf.image.stateless_random_crop(x, window, seed=pair), y

        ds = ds.enumerate().map(cut, num_parallel_calls=1)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=1)
    if augment_enabled:
        cfg = resolve_augment(augment)
        augmenter = build_augmenter(cfg, seed=seed)
        stain = float(cfg["stain"])

        def apply(step, batch):
            x, y = batch
            x = augmenter(x, training=True)
            if stain:
                gain = tf.random.stateless_uniform(
                    [tf.shape(x)[0], 1, 1, 3],
                    seed=tf.stack([tf.cast(seed, tf.int64), step]),
                    minval=1.0 - stain,
                    maxval=1.0 + stain,
                )
                x = x * gain
            return tf.clip_by_value(x, 0.0, 255.0), y

        ds = ds.enumerate().map(apply, num_parallel_calls=1)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = 1
    ds = ds.with_options(options)
    return ds.prefetch(2)


def eval_batches(images: np.ndarray, batch_size: int):
    """Plain float32 batches for inference-mode prediction (no augmentation, fixed order)."""
    images = np.asarray(images)
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size].astype(np.float32)
