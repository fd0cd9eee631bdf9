"""Throughput of the fused, batched engine against the plain per-image, per-member approach.

Both paths classify the same synthetic PNG images end to end (decode, prepare, models, vote) in
the same process, with the same member models (loaded once, each as its own Keras model):

* engine: ``EnsembleEngine.classify`` — one fused model call per batch of ``batch`` images;
  per-image latency is the batch's time divided by its size.
* plain: for each image, decode and prepare it, then ``model.predict`` on that single image (with
  its test-time views, when the version has them) for every member in turn, then vote;
  per-image latency is that image's time.

Both are warmed up first (graph tracing is not timed). The engine is also timed one image per
call (batch 1, a lone upload). Beside the timings: the GFLOP an image costs (every member and
test-time view; ``inference.hardware``), the machine's matrix-multiply rate measured in the same
run, and their ratio to the engine's time (``floor_ratio``: 1.0 would be the machine's matmul
rate on every operation). ``cold_start`` times a fresh process from its start to its first
result. Keras is imported through ``inference.engine`` only when a benchmark runs.
"""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    engine_batch1: Timing | None = None  # one image per call
    gflop_per_image: float | None = None  # every member and test-time view
    member_gflop: dict[str, float] = field(default_factory=dict)  # per member, all its views
    views: int = 1
    machine_gflop_per_s: float | None = None  # float32 matmul, same process, same run

    @property
    def speedup(self) -> float:
        return self.engine.images_per_s / self.plain.images_per_s

    @property
    def floor_ratio(self) -> float | None:
        """The engine's time per image (batch ``batch``) over the compute floor: GFLOP per
        image at the machine's matmul rate."""
        if not self.gflop_per_image or not self.machine_gflop_per_s:
            return None
        floor_s = self.gflop_per_image / self.machine_gflop_per_s
        return (1.0 / self.engine.images_per_s) / floor_s

    def as_json(self, **extra) -> dict:
        """The figures ``bench_inference --json`` prints (``extra``: cold start and memory)."""
        return {
            "version": self.version,
            "members": self.members,
            "input_size": self.input_size,
            "tta": self.tta,
            "views": self.views,
            "images": self.images,
            "batch": self.batch,
            "engine_images_per_s": {
                "batch_1": _round(self.engine_batch1.images_per_s if self.engine_batch1 else None),
                f"batch_{self.batch}": _round(self.engine.images_per_s),
            },
            "plain_images_per_s": _round(self.plain.images_per_s),
            "speedup": _round(self.speedup),
            "gflop_per_image": _round(self.gflop_per_image),
            "member_gflop_per_image": {k: _round(v) for k, v in self.member_gflop.items()},
            "machine_gflop_per_s": _round(self.machine_gflop_per_s),
            "floor_ratio": _round(self.floor_ratio),
            "timings": {
                "engine": asdict(self.engine),
                "engine_batch_1": asdict(self.engine_batch1) if self.engine_batch1 else None,
                "plain": asdict(self.plain),
            },
            "max_probability_difference": self.max_probability_difference,
            "same_labels": self.same_labels,
            **extra,
        }


def _round(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


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
    engine_batch1 = _time_batch_of_one(engine, data[: min(images, 16)])
    engine.batch_size = batch

    # --- plain: one model.predict per image per member, on the same pixels the engine uses.
    import keras

    from inference.fused import member_resizing

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
        engine_batch1=engine_batch1,
        **compute_figures(engine),
    )


def _time_batch_of_one(engine, data: list[bytes]) -> Timing:
    """The engine classifying one image per call (warmed up on the batch-1 shape first)."""
    engine.batch_size = 1
    engine.classify(data[:1])
    t0 = time.perf_counter()
    results = engine.classify(data)
    return Timing.from_latencies([r.inference_ms for r in results], time.perf_counter() - t0)


def compute_figures(engine) -> dict:
    """GFLOP per image (the fused model, and each member with its views) and the machine's
    matmul rate, measured now."""
    from inference.hardware import matmul_gflop_per_s, model_gflop

    views = len(preprocessing.TTA_VIEWS[engine.preprocessing["tta"]])
    members = {
        name: model_gflop(model, int(model.input_shape[1])) * views
        for name, model in zip(engine.member_names, engine.member_models, strict=True)
    }
    return {
        "gflop_per_image": model_gflop(engine.fused_model, engine.input_size),
        "member_gflop": members,
        "views": views,
        "machine_gflop_per_s": matmul_gflop_per_s(),
    }


COLD_START_MARK = "LP-FIRST-RESULT "


def cold_start(version_number: int, *, command=None, timeout_s: float = 600.0) -> dict:
    """A fresh process (``manage.py bench_inference --cold-start-child``, or ``command``) from
    its start to its first result: ``{"cold_start_s", "load_s", "rss_mb", "breakdown"}``
    (``rss_mb``: that process's peak resident memory once it has classified, what one worker
    process holds; ``breakdown``: where the seconds went, ``startup_rest_s`` being Python,
    Django and the command before the child's first timed step)."""
    from django.conf import settings

    command = command or [
        sys.executable,
        str(Path(settings.BASE_DIR) / "manage.py"),
        "bench_inference",
        "--cold-start-child",
        "--version",
        str(version_number),
    ]
    t0 = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.startswith(COLD_START_MARK):
                seconds = time.perf_counter() - t0
                child.wait(timeout=timeout_s)
                result = {
                    "cold_start_s": round(seconds, 2),
                    **json.loads(line[len(COLD_START_MARK) :]),
                }
                breakdown = result.get("breakdown")
                if breakdown:
                    timed = sum(v for k, v in breakdown.items() if k.endswith("_s"))
                    breakdown["startup_rest_s"] = round(max(0.0, seconds - timed), 2)
                return result
        child.wait(timeout=timeout_s)
    raise RuntimeError(f"the cold-start process exited ({child.returncode}) without a result")


def cold_starts(version_number: int, runs: int, *, command=None) -> dict:
    """``cold_start`` ``runs`` times, one after the other: the median run's figures, with every
    run's ``cold_start_runs_s`` and the largest peak (``rss_mb``). With an even ``runs``, the
    faster of the two middle runs. One start alone can mislead on a shared machine; three on
    machine D (README, Performance) took 13.9, 13.9 and 14.2 s."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    results = sorted(
        (cold_start(version_number, command=command) for _ in range(runs)),
        key=lambda r: r["cold_start_s"],
    )
    median = dict(results[(runs - 1) // 2])
    median["cold_start_runs_s"] = [r["cold_start_s"] for r in results]
    median["rss_mb"] = max(r["rss_mb"] for r in results)
    return median


def cold_start_child(version) -> str:
    """In the fresh process: import the engine (TensorFlow) as a worker does
    (``inference.startup``), load ``version``, warm up, classify one image; the line to print,
    with the seconds of each step."""
    from inference.artifacts import hash_files_ahead
    from inference.hardware import current_rss_mb, peak_rss_mb
    from inference.startup import import_engine

    rss = {"started": current_rss_mb()}
    t0 = time.perf_counter()
    engine_module = import_engine(alongside=functools.partial(hash_files_ahead, version))

    import_s = time.perf_counter() - t0
    rss["imported"] = current_rss_mb()
    t1 = time.perf_counter()
    engine = engine_module.EnsembleEngine.from_version(version)
    t2 = time.perf_counter()
    rss["loaded"] = current_rss_mb()
    engine.warm_up()
    t3 = time.perf_counter()
    rss["warmed_up"] = current_rss_mb()
    engine.classify(synthetic_images(1))
    t4 = time.perf_counter()
    rss["first_result"] = current_rss_mb()
    loaded = engine.load_seconds
    breakdown = {
        "source": loaded.get("source"),  # "serving model", or "members" without one
        "import_tensorflow_s": round(import_s, 2),
        "verify_s": loaded.get("verify_s", 0.0),
        "load_serving_s": loaded.get("serving_s", 0.0),
        "load_members_s": round(sum(loaded.get("members_s", {}).values()), 2),
        "fuse_s": loaded.get("fuse_s", 0.0),
        "build_s": loaded.get("build_s", 0.0),  # serving model: the detector and the engine
        "load_other_s": round(max(0.0, t2 - t1 - loaded.get("total_s", 0.0)), 2),
        "warm_up_s": round(t3 - t2, 2),
        "first_result_s": round(t4 - t3, 2),
        "per_member": loaded.get("members_s", {}),
        # resident MB after each step (the peak, rss_mb, can lie between two of them)
        "rss_mb_after": {k: None if v is None else round(v) for k, v in rss.items()},
    }
    return COLD_START_MARK + json.dumps(
        {"load_s": round(t3 - t1, 2), "rss_mb": round(peak_rss_mb()), "breakdown": breakdown}
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
        *_compute_lines(report),
        f"Max |probability difference| between the paths: {report.max_probability_difference:.2e}"
        f"; same voted label on {report.same_labels}/{report.images} images",
    ]
    return "\n".join(lines)


def _compute_lines(report: BenchmarkReport) -> list[str]:
    lines = []
    if report.engine_batch1 is not None:
        lines.append(
            f"Engine, one image per call: {report.engine_batch1.images_per_s:.2f} images/s"
        )
    if report.floor_ratio is not None:
        members = ", ".join(f"{k} {v:.1f}" for k, v in report.member_gflop.items())
        lines += [
            f"Compute: {report.gflop_per_image:.1f} GFLOP an image ({report.views} view(s); "
            f"per member: {members})",
            f"Machine: {report.machine_gflop_per_s:.0f} GFLOP/s (float32 matmul, this run); "
            f"engine time / compute floor: {report.floor_ratio:.2f}",
        ]
    return lines
