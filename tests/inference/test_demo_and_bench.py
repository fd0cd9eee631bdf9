"""The demo ensemble's cache, registration, management commands and the benchmark."""

import io
import os

import pytest
from django.core.management import CommandError, call_command

from inference import artifacts, demo, registry
from inference.benchmark import format_report, run_benchmark

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
