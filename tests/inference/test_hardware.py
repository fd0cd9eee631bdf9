"""``inference.hardware``: the memory figures the benchmarks print."""

import subprocess
import sys

from django.conf import settings

from inference.hardware import current_rss_mb, peak_rss_mb


def test_a_child_reports_its_own_peak_not_its_large_parents():
    """``ru_maxrss`` survives exec: a small child of a large parent would report the parent's
    size. The cold start child of bench_inference is such a child."""
    held = bytearray(400 * 1024 * 1024)
    held[::4096] = b"\1" * len(held[::4096])  # make every page resident
    assert current_rss_mb() > 400
    code = "from inference.hardware import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=settings.BASE_DIR,
    )  # fmt: skip
    assert 0 < float(out.stdout) < 200
    assert peak_rss_mb() >= current_rss_mb() > 400
    del held
