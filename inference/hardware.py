"""What a model asks of the hardware and what the hardware gives, measured in this process.

* ``model_gflop``: floating-point operations of one image through a Keras model, counted by
  TensorFlow's profiler on the traced inference graph (a multiply-add counts as two, as in
  the usual GFLOP figures of these architectures).
* ``matmul_gflop_per_s``: the float32 rate of a large matrix multiply on this machine with
  TensorFlow's own threads: the practical ceiling that the engine's convolutions are compared
  with (``floor_ratio`` in ``inference.benchmark``).
* ``peak_rss_mb``: this process's peak resident memory.

Imports TensorFlow lazily: only benchmarks call these.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path


def model_gflop(model, input_size: int) -> float:
    """GFLOP of one (input_size, input_size, 3) image through ``model`` in inference mode."""
    import tensorflow as tf
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    spec = tf.TensorSpec((1, input_size, input_size, 3), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = (
        ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    )
    return profile(graph, options=options).total_float_ops / 1e9


def matmul_gflop_per_s(n: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of an (n, n) float32 matrix multiply, the best of ``repeats`` after a warm-up."""
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    tf.linalg.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it started its program, in MB.

    On Linux the kernel's high-water mark of this program's memory (``VmHWM``). Not
    ``ru_maxrss``: that survives ``exec``, so a process started by a large parent (the cold
    start child of ``bench_inference``) reports the parent's size at the fork (measured: 1,513
    MB for a 13 MB child of a 1.5 GB parent). Elsewhere ``ru_maxrss`` (KB, B on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float | None:
    """Resident set size of this process now, in MB (Linux ``/proc``; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
