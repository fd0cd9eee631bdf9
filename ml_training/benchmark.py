"""Training throughput of a profile's members on this machine, to plan a profile's caps.

Each member is built, compiled and fed exactly as ``train.train_member`` does (same model
builder, optimiser, loss, precision, batch size and augmentation pipeline) on random images of
its input size; the first step (which traces the train function) is timed on its own, then
``warmup`` more steps run untimed and ``steps`` steps are timed. With ``val_images``, the
per-epoch work around the steps is timed too, with the functions training runs: the BatchNorm
refresh and the validation pass over that many images at the served size, each after its
first (tracing) call. Figures depend on the machine and on what else runs on it: measure on an
otherwise idle machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ml_training import augment as aug
from ml_training import train
from ml_training.member_model import served_network

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
    epochs: int = 0  # the profile's epoch count for the member
    val_images: int = 0
    validation_s: float = 0.0  # BatchNorm refresh + validation pass, once traced
    validation_trace_s: float = 0.0  # their first calls beyond validation_s (tracing)
    steps_per_epoch: int | None = None  # fixed by the profile (None: the epoch's images)

    def epoch_minutes(self, epoch_images: int) -> float:
        """Minutes of training steps in an epoch (no validation): the profile's fixed
        ``steps_per_epoch`` when it sets them, else an epoch of ``epoch_images``."""
        steps = self.steps_per_epoch or math.ceil(epoch_images / self.batch_size)
        return steps * self.ms_per_step / 1000 / 60

    def member_minutes(self, epoch_images: int) -> float:
        """The member's planned epochs: steps, refresh and validation, and the one-off traces
        (not the post-hoc calibration, a few validation passes)."""
        per_epoch = self.epoch_minutes(epoch_images) + self.validation_s / 60
        one_off = (self.trace_s - self.ms_per_step / 1000 + self.validation_trace_s) / 60
        return self.epochs * per_epoch + max(0.0, one_off)


def measure_member(
    member: dict,
    *,
    augment: dict | None,
    steps: int = 12,
    warmup: int = 2,
    seed: int = 0,
    val_images: int = 0,
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
    validation = (0.0, 0.0)
    if val_images:
        served = served_network(model, member, NUM_CLASSES, None)
        validation = _time_validation(served, member, rng, images=val_images, seed=seed)
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
        epochs=int(member["epochs"]),
        val_images=val_images,
        validation_s=validation[0],
        validation_trace_s=validation[1],
        steps_per_epoch=member.get("steps_per_epoch"),
    )


def _time_validation(served, member: dict, rng, *, images: int, seed: int) -> tuple[float, float]:
    """(seconds of an epoch's BatchNorm refresh and validation pass once traced, extra seconds
    of the first), with the functions ``train_member`` runs and the member's settings."""
    from ml_training.posthoc import graph_mode, refresh_bn_statistics

    size = int(member["input_size"])
    x_val = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    x_train = rng.integers(0, 256, (2 * int(member["batch_size"]), size, size, 3), np.uint8)
    graph = graph_mode(member)
    times = []
    for epoch in range(2):
        t0 = time.perf_counter()
        refresh_bn_statistics(
            served,
            x_train,
            batches=int(member.get("bn_refresh_batches", 16)),
            batch_size=int(member["batch_size"]),
            seed=seed + epoch,
            compiled=graph,
        )
        train.predict_probs(served, x_val, compiled=graph)
        times.append(time.perf_counter() - t0)
    return times[1], max(0.0, times[0] - times[1])


def run(
    profile: dict,
    *,
    members: list[str] | None = None,
    precisions: list[str] | None = None,
    steps: int = 12,
    warmup: int = 2,
    val_images: int = 0,
    on_result=None,
) -> list[TrainingTiming]:
    """Measure the profile's members (all, or those named), each at its own precision or at
    every precision in ``precisions``; ``on_result(timing)`` is called after each one."""
    known = [m["name"] for m in profile["members"]]
    unknown = sorted(set(members or []) - set(known))
    if unknown:
        raise ValueError(f"no member(s) {unknown} in profile {profile['name']!r}; it has {known}")
    # The profile's own determinism: deterministic kernels are slower (the cpu profile's plan
    # on a 2-core AMD EPYC: 46.6 min of member training with it, 45.1 without).
    train.configure_tensorflow(
        threads=profile.get("threads"), deterministic=bool(profile.get("deterministic", True))
    )
    out = []
    for m in profile["members"]:
        if members and m["name"] not in members:
            continue
        for precision in precisions or [m.get("precision", "float32")]:
            spec = {**m, "precision": precision}
            timing = measure_member(
                spec,
                augment=profile.get("augment"),
                steps=steps,
                warmup=warmup,
                val_images=val_images,
            )
            out.append(timing)
            if on_result is not None:
                on_result(timing)
    return out


def table_header(*, epoch_images: int | None = None, val_images: int = 0) -> str:
    head = f"{'member':<13}{'px':>5}{'crop':>6}{'batch':>7}  {'precision':<16}"
    head += f"{'img/s':>8}{'ms/step':>9}{'first step s':>14}"
    if epoch_images:
        head += f"{'min/epoch':>11}"
    if epoch_images and val_images:
        head += f"{'val s/epoch':>13}{'epochs':>8}{'member min':>12}"
    return head


def table_row(t: TrainingTiming, *, epoch_images: int | None = None) -> str:
    line = (
        f"{t.member:<13}{t.input_size:>5}{t.train_crop or '-':>6}{t.batch_size:>7}  "
        f"{t.precision:<16}{t.images_per_s:>8.1f}{t.ms_per_step:>9.0f}{t.trace_s:>14.1f}"
    )
    if epoch_images:
        line += f"{t.epoch_minutes(epoch_images):>11.2f}"
    if epoch_images and t.val_images:
        line += f"{t.validation_s:>13.1f}{t.epochs:>8}{t.member_minutes(epoch_images):>12.1f}"
    return line


def table_footer(
    timings: list[TrainingTiming], *, epoch_images: int | None = None, val_images: int = 0
) -> str:
    if not epoch_images:
        return ""
    lines = [
        f"(min/epoch: training steps of {epoch_images} images, or of the steps the profile "
        "fixes, without validation)"
    ]
    if val_images:
        total = sum(t.member_minutes(epoch_images) for t in timings)
        lines += [
            f"(val s/epoch: BatchNorm refresh and validation of {val_images} images at the "
            "served size; member min: the profile's epochs of both, plus the first calls' "
            "tracing)",
            f"Member training, all measured members: {total:.1f} min (without data loading, "
            "post-hoc calibration, the out-of-domain fit and the test evaluation)",
        ]
    return "\n".join(lines)
