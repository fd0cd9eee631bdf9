"""The demo ensemble's cache, registration, management commands and the benchmark."""

import io
import json
import os
import sys

import pytest
from django.core.management import CommandError, call_command

from inference import artifacts, demo, registry
from inference.benchmark import (
    COLD_START_MARK,
    cold_start,
    cold_start_child,
    cold_starts,
    format_report,
    run_benchmark,
)

pytestmark = pytest.mark.slow


def test_demo_members_are_cached(demo_ensemble_files):
    mtimes = {m["name"]: os.path.getmtime(m["path"]) for m in demo_ensemble_files}
    again = demo.build_demo_members()
    assert again == demo_ensemble_files
    assert {m["name"]: os.path.getmtime(m["path"]) for m in again} == mtimes  # not rebuilt
    assert [m["architecture"] for m in again] == list(demo.DEMO_ARCHITECTURES)
    assert {m["input_size"] for m in again} == {72}
    assert demo.demo_cache_key() in again[0]["path"]


@pytest.mark.django_db
@pytest.mark.usefixtures("isolated_media")
def test_register_demo_version(demo_ensemble_files):
    version = demo.register_demo_version(activate=True)
    assert version.is_demo and version.status == "active"
    assert version.notes.startswith("DEMO: untrained weights, predictions are meaningless")
    assert version.label.endswith("DEMO")
    assert version.member_names == list(demo.DEMO_ARCHITECTURES)
    assert version.class_names == ["Benign", "Early", "Pre", "Pro"]
    assert version.preprocessing["input_size"] == 72
    for member, source in zip(version.members, demo_ensemble_files, strict=True):
        assert member["sha256"] == registry.sha256_file(source["path"])


@pytest.mark.django_db
def test_register_demo_model_command_if_none_active(demo_version):
    out = io.StringIO()
    call_command("register_demo_model", "--if-none-active", stdout=out)
    assert "is active: nothing to do" in out.getvalue()
    assert artifacts.get_active_version() == demo_version


def test_bench_inference_rejects_an_unknown_version(db):
    with pytest.raises(CommandError, match="no model version 999"):
        call_command("bench_inference", "--version", "999")
    with pytest.raises(CommandError, match="no active version"):
        call_command("bench_inference")


def test_benchmark_compares_both_paths(demo_version):
    from inference.engine import get_engine

    report = run_benchmark(engine=get_engine(), images=4, batch=2)
    assert report.images == 4 and report.batch == 2
    assert report.engine.images_per_s > 0 and report.plain.images_per_s > 0
    assert report.engine.p95_ms >= 0 and report.plain.mean_ms > 0
    assert report.max_probability_difference < 1e-4
    assert report.same_labels == 4
    text = format_report(report)
    assert "Speed-up" in text and "engine (fused model, batched)" in text
    # The compute floor: the fused model costs what its members cost, view by view.
    assert report.engine_batch1.images_per_s > 0
    assert sum(report.member_gflop.values()) == pytest.approx(report.gflop_per_image, rel=0.05)
    assert report.machine_gflop_per_s > 1 and report.floor_ratio > 0
    figures = report.as_json(cold_start_s=1.0)
    assert figures["engine_images_per_s"].keys() == {"batch_1", "batch_2"}
    assert figures["floor_ratio"] == round(report.floor_ratio, 3)
    assert figures["cold_start_s"] == 1.0
    json.dumps(figures)  # printable as it is
    assert "compute floor" in text


def test_flops_are_counted_as_the_textbook_says():
    import keras

    from inference.hardware import model_gflop

    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same", use_bias=False)]
    )
    # 8 x 8 outputs x 4 filters x (3 x 3 x 3) multiply-adds, two operations each.
    assert model_gflop(model, 8) * 1e9 == pytest.approx(2 * 8 * 8 * 4 * 27)


def test_cold_start_times_a_fresh_process_to_its_first_result(light_version):
    line = cold_start_child(light_version)  # what the fresh process prints (one member: quick)
    child = [sys.executable, "-c", f"import time; print('loading'); print({line!r})"]
    figures = cold_start(light_version.version, command=child)
    assert figures["cold_start_s"] > 0
    assert figures["load_s"] > 0 and figures["rss_mb"] > 100
    # where the time went: every step of loading, one entry per member, and the rest of the
    # process's start (Python, Django) as what the child's steps do not account for
    b = figures["breakdown"]
    assert list(b["per_member"]) == light_version.member_names
    assert b["load_members_s"] == pytest.approx(sum(b["per_member"].values()), abs=0.02)
    steps = ("verify_s", "load_members_s", "fuse_s", "load_other_s", "warm_up_s")
    assert sum(b[k] for k in steps) == pytest.approx(figures["load_s"], abs=0.06)
    assert b["import_tensorflow_s"] >= 0 and b["first_result_s"] > 0
    assert b["startup_rest_s"] >= 0
    after = b["rss_mb_after"]
    assert list(after) == ["started", "imported", "loaded", "warmed_up", "first_result"]
    assert 0 < after["first_result"] <= figures["rss_mb"] + 1  # never above the peak
    with pytest.raises(RuntimeError, match="without a result"):
        cold_start(light_version.version, command=[sys.executable, "-c", "print('no result')"])


def test_repeated_cold_starts_report_the_median_run_and_the_largest_peak(tmp_path):
    """Three fake children that answer after 1.6, 0.2 and 0.9 s with peaks 300, 100, 200 MB."""
    counter = tmp_path / "runs"
    child = tmp_path / "child.py"
    child.write_text(
        "import json, pathlib, time\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "delay, peak = [(1.6, 300), (0.2, 100), (0.9, 200)][n]\n"
        "time.sleep(delay)\n"
        f"print({COLD_START_MARK!r} + json.dumps("
        "{'load_s': delay, 'rss_mb': peak, 'breakdown': {}}))\n"
    )
    figures = cold_starts(7, 3, command=[sys.executable, str(child)])
    runs = figures["cold_start_runs_s"]
    assert runs == sorted(runs) and len(runs) == 3
    assert figures["cold_start_s"] == runs[1]
    assert figures["load_s"] == 0.9  # the median run's own figures
    assert figures["rss_mb"] == 300  # the largest peak of all runs
    with pytest.raises(ValueError):
        cold_starts(7, 0)
