"""Throughput of the fused, batched engine against the plain per-image, per-member approach.

Both paths classify the same synthetic PNG images end to end (decode, prepare, models, vote) in
the same process, with the same member models (loaded once, each as its own Keras model):

* engine: ``EnsembleEngine.classify`` — one fused model call per batch of ``batch`` images;
  per-image latency is the batch's time divided by its size.
* plain: for each image, decode and prepare it, then ``model.predict`` on that single image (with
  its test-time views, when the version has them) for every member in turn, then vote;
  per-image latency is that image's time.

Both are warmed up first (graph tracing is not timed). Keras is imported through
``inference.engine`` only when a benchmark runs.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np

from inference import preprocessing, voting


@dataclass(frozen=True)
class Timing:
    total_s: float
    images_per_s: float
    mean_ms: float
    p95_ms: float

    @classmethod
    def from_latencies(cls, latencies_ms, total_s: float) -> Timing:
        lat = np.asarray(latencies_ms, dtype=np.float64)
        return cls(
            total_s=total_s,
            images_per_s=len(lat) / total_s if total_s > 0 else float("inf"),
            mean_ms=float(lat.mean()),
            p95_ms=float(np.percentile(lat, 95)),
        )


@dataclass(frozen=True)
class BenchmarkReport:
    version: str
    members: list[str]
    input_size: int
    tta: str
    images: int
    batch: int
    engine: Timing
    plain: Timing
    max_probability_difference: float  # between the two paths, over every member and image
    same_labels: int  # images whose voted label is the same on both paths

    @property
    def speedup(self) -> float:
        return self.engine.images_per_s / self.plain.images_per_s


def synthetic_images(n: int, *, size: int = 256, seed: int = 0) -> list[bytes]:
    """``n`` PNG images of ``size`` px: a pinkish background with random purple blobs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        img = np.empty((size, size, 3), dtype=np.float32)
        img[:] = (230, 200, 215)
        for _ in range(int(rng.integers(3, 9))):
            cy, cx = rng.uniform(0, size, 2)
            r = rng.uniform(size * 0.04, size * 0.15)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[mask] = rng.uniform((90, 30, 120), (150, 80, 190))
        img += rng.normal(0, 6, img.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def run_benchmark(*, engine, images: int = 64, batch: int = 16, seed: int = 0) -> BenchmarkReport:
    """Time ``engine`` (an ``EnsembleEngine``) against the plain approach on its own members."""
    if images < 1 or batch < 1:
        raise ValueError("images and batch must be at least 1")
    data = synthetic_images(images, seed=seed)
    engine.batch_size = batch

    # --- engine: warm up every batch shape that will be used, then time.
    engine.classify(data[: min(batch, images)])
    if images % batch and images > batch:
        engine.classify(data[: images % batch])
    t0 = time.perf_counter()
    engine_results = engine.classify(data)
    engine_total = time.perf_counter() - t0
    engine_timing = Timing.from_latencies([r.inference_ms for r in engine_results], engine_total)

    # --- plain: one model.predict per image per member, on the same pixels the engine uses.
    import keras

    from inference.engine import member_resizing

    cfg = engine.preprocessing
    resizers = [
        member_resizing(int(m.input_shape[1]), cfg["input_size"], cfg["interpolation"])
        if int(m.input_shape[1]) != cfg["input_size"]
        else None
        for m in engine.member_models
    ]

    def plain_one(raw: bytes) -> np.ndarray:
        x = preprocessing.load_and_prepare(raw, cfg)[None].astype(np.float32)
        views = preprocessing.tta_views(x, cfg["tta"])[:, 0]  # (V, S, S, 3)
        rows = []
        for model, resize in zip(engine.member_models, resizers, strict=True):
            member_x = views if resize is None else keras.ops.convert_to_numpy(resize(views))
            rows.append(model.predict(member_x, verbose=0).mean(axis=0))
        return np.stack(rows)

    plain_one(data[0])  # warm-up
    latencies, plain_probs = [], []
    t0 = time.perf_counter()
    for raw in data:
        t1 = time.perf_counter()
        probs = plain_one(raw)
        voting.vote(probs, engine.class_names, engine.member_names)
        plain_probs.append(probs)
        latencies.append((time.perf_counter() - t1) * 1000.0)
    plain_total = time.perf_counter() - t0
    plain_timing = Timing.from_latencies(latencies, plain_total)

    engine_probs = np.array(
        [
            [[m.probabilities[c] for c in engine.class_names] for m in r.members]
            for r in engine_results
        ]
    )
    plain_probs = np.asarray(plain_probs)
    plain_labels = [
        voting.vote(p, engine.class_names, engine.member_names).label for p in plain_probs
    ]
    return BenchmarkReport(
        version=str(engine.version),
        members=list(engine.member_names),
        input_size=engine.input_size,
        tta=engine.preprocessing["tta"],
        images=images,
        batch=batch,
        engine=engine_timing,
        plain=plain_timing,
        # EnsembleResult probabilities are rounded to 6 decimals.
        max_probability_difference=float(np.abs(engine_probs - plain_probs).max()),
        same_labels=sum(
            r.label == lab for r, lab in zip(engine_results, plain_labels, strict=True)
        ),
    )


def format_report(report: BenchmarkReport) -> str:
    lines = [
        f"Version: {report.version}",
        f"Members: {', '.join(report.members)} (input {report.input_size} px, "
        f"test-time views: {report.tta})",
        f"Images: {report.images} synthetic 256x256 PNG, engine batch size {report.batch}",
        "",
        f"{'approach':<38}{'images/s':>10}{'mean ms/img':>14}{'p95 ms/img':>13}{'total s':>10}",
    ]
    for label, t in (
        ("engine (fused model, batched)", report.engine),
        ("plain (model.predict per image/member)", report.plain),
    ):
        lines.append(
            f"{label:<38}{t.images_per_s:>10.2f}{t.mean_ms:>14.1f}{t.p95_ms:>13.1f}"
            f"{t.total_s:>10.2f}"
        )
    lines += [
        "",
        f"Speed-up (images/s): {report.speedup:.1f}x",
        f"Max |probability difference| between the paths: {report.max_probability_difference:.2e}"
        f"; same voted label on {report.same_labels}/{report.images} images",
    ]
    return "\n".join(lines)
