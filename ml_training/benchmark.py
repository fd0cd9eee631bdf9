"""Training throughput of a profile's members on this machine, to plan a profile's caps.

Each member is built, compiled and fed exactly as ``train.train_member`` does (same model
builder, optimiser, loss, precision, batch size and augmentation pipeline) on random images of
its input size; the first step (which traces the train function) is timed on its own, then
``warmup`` more steps run untimed and ``steps`` steps are timed. Figures depend on the machine
and on what else runs on it: measure on an otherwise idle machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ml_training import augment as aug
from ml_training import train

NUM_CLASSES = 4


@dataclass(frozen=True)
class TrainingTiming:
    member: str
    input_size: int
    train_crop: int | None  # the random window it trains on (None: the whole input)
    batch_size: int
    precision: str
    augment: bool
    trace_s: float  # first step: tracing plus one step
    ms_per_step: float
    images_per_s: float

    def epoch_minutes(self, epoch_images: int) -> float:
        """Minutes of training steps in an epoch of ``epoch_images`` (no validation)."""
        steps = math.ceil(epoch_images / self.batch_size)
        return steps * self.ms_per_step / 1000 / 60


def measure_member(
    member: dict, *, augment: dict | None, steps: int = 12, warmup: int = 2, seed: int = 0
) -> TrainingTiming:
    """Time ``steps`` training steps of one resolved profile member."""
    import keras

    if steps < 1 or warmup < 0:
        raise ValueError("steps must be at least 1 and warmup at least 0")
    keras.utils.set_random_seed(seed)
    size, batch = int(member["input_size"]), int(member["batch_size"])
    crop = train.training_crop(member)
    rng = np.random.default_rng(seed)
    n = max(4 * batch, 64)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % NUM_CLASSES
    ds = aug.balanced_train_dataset(
        images,
        labels,
        batch_size=batch,
        seed=seed,
        num_classes=NUM_CLASSES,
        augment=augment,
        augment_enabled=bool(member["augment"]),
        crop=crop,
    ).map(lambda x, y: (x, train._one_hot(y, NUM_CLASSES)))
    precision = member.get("precision", "float32")
    model = train.build_member_model(
        {**member, "input_size": crop or size}, NUM_CLASSES, None, precision
    )
    train.compile_member(model, member, train.LRPlan(member, steps, 1))
    batches = iter(ds)
    t0 = time.perf_counter()
    model.train_on_batch(*next(batches))
    trace_s = time.perf_counter() - t0
    for _ in range(warmup):
        model.train_on_batch(*next(batches))
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*next(batches))
    per_step = (time.perf_counter() - t0) / steps
    keras.backend.clear_session()
    return TrainingTiming(
        member=member["name"],
        input_size=size,
        train_crop=crop,
        batch_size=batch,
        precision=precision,
        augment=bool(member["augment"]),
        trace_s=trace_s,
        ms_per_step=per_step * 1000,
        images_per_s=batch / per_step,
    )


def run(
    profile: dict,
    *,
    members: list[str] | None = None,
    precisions: list[str] | None = None,
    steps: int = 12,
    warmup: int = 2,
    on_result=None,
) -> list[TrainingTiming]:
    """Measure the profile's members (all, or those named), each at its own precision or at
    every precision in ``precisions``; ``on_result(timing)`` is called after each one."""
    known = [m["name"] for m in profile["members"]]
    unknown = sorted(set(members or []) - set(known))
    if unknown:
        raise ValueError(f"no member(s) {unknown} in profile {profile['name']!r}; it has {known}")
    train.configure_tensorflow(threads=profile.get("threads"), deterministic=False)
    out = []
    for m in profile["members"]:
        if members and m["name"] not in members:
            continue
        for precision in precisions or [m.get("precision", "float32")]:
            spec = {**m, "precision": precision}
            timing = measure_member(
                spec, augment=profile.get("augment"), steps=steps, warmup=warmup
            )
            out.append(timing)
            if on_result is not None:
                on_result(timing)
    return out


def table_header(*, epoch_images: int | None = None) -> str:
    head = f"{'member':<13}{'px':>5}{'crop':>6}{'batch':>7}  {'precision':<16}"
    return (
        head
        + f"{'img/s':>8}{'ms/step':>9}{'first step s':>14}"
        + (f"{'min/epoch':>11}" if epoch_images else "")
    )


def table_row(t: TrainingTiming, *, epoch_images: int | None = None) -> str:
    line = (
        f"{t.member:<13}{t.input_size:>5}{t.train_crop or '-':>6}{t.batch_size:>7}  "
        f"{t.precision:<16}{t.images_per_s:>8.1f}{t.ms_per_step:>9.0f}{t.trace_s:>14.1f}"
    )
    if epoch_images:
        line += f"{t.epoch_minutes(epoch_images):>11.2f}"
    return line


def table_footer(*, epoch_images: int | None = None) -> str:
    if not epoch_images:
        return ""
    return f"(min/epoch: training steps of {epoch_images} images, without validation)"
