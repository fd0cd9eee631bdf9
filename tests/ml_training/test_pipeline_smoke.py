"""End to end on the smoke profile: synthetic smears → retrain → registered version with metrics
and plots → evaluate_model --json on it → register_model of the run bundle; and the
reproducibility check (same seed → same split and metrics within a tolerance)."""

import json

import pytest
from django.core.management import call_command

from inference.checksums import sha256_file
from inference.models import ModelVersion
from ml_training import pipeline, train
from ml_training.profiles import PROFILES_DIR
from ml_training.reproducibility import METRIC_TOLERANCE

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def smears(tmp_path_factory):
    out = tmp_path_factory.mktemp("smears") / "smears"
    call_command("make_synthetic_smears", str(out), "--per-class", "12", "--size", "96")
    return out


@pytest.fixture(scope="module")
def smears_with_twins(smears, tmp_path_factory):
    """A dataset root like the Taleqani release: ``Original/`` (the smears) and ``Segmented/``
    (each smear through our own segmentation)."""
    import shutil

    import numpy as np
    from PIL import Image

    from inference.segmentation import segment

    root = tmp_path_factory.mktemp("dataset")
    shutil.copytree(smears, root / "Original")
    for src in (root / "Original").rglob("*.png"):
        dst = root / "Segmented" / src.relative_to(root / "Original")
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(segment(np.asarray(Image.open(src).convert("RGB")), None)).save(dst)
    return root


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, smears_with_twins):
    """One unregistered run of the two-member profile (seed 11) on Original and Segmented
    smears, shared by the tests that only read it or copy it: training is most of this file's
    time, and CI has 20 minutes."""
    from django.test import override_settings

    root = tmp_path_factory.mktemp("small-run")
    with override_settings(VAR_DIR=root / "var"):
        return _small_retrain(root, smears_with_twins)


def _small_retrain(root, smears):
    """``(run context, metrics)`` of the two-member profile, seed 11, in ``root``: the one
    command the reproducibility test runs twice."""
    ctx, _, metrics = pipeline.retrain(
        data_dir=smears,
        profile=_small_profile(root),
        seed=11,
        run_dir=root / "run",
        register=False,
        progress=False,
    )
    return ctx, metrics


def test_smoke_retrain_evaluate_register(tmp_path, smears, capsys, settings):
    settings.VAR_DIR = tmp_path / "var"
    run_dir = tmp_path / "run"
    call_command(
        "retrain",
        "--data-dir",
        str(smears),
        "--profile",
        "smoke",
        "--run-dir",
        str(run_dir),
        "--seed",
        "5",
        "--demo",
        "--activate",
        verbosity=0,
    )
    version = ModelVersion.objects.get()
    assert version.is_demo and version.status == ModelVersion.Status.ACTIVE
    assert version.member_names == ["ResNet50", "VGG16", "MobileNetV2", "Xception", "NASNetLarge"]
    m = version.metrics
    assert m["schema"] == "leukemia-portal/metrics/v1"
    assert set(m["members"]) == set(version.member_names)
    for key in ("accuracy", "macro_f1", "cohen_kappa", "roc_auc_macro", "ece", "ci95"):
        assert key in m["ensemble"]
    assert m["test_set"]["images"] == len(json.loads((run_dir / "split.json").read_text())["test"])
    assert m["plots"]["confusion_matrix"] == "plots/confusion_ensemble.png"
    assert m["artifacts"]["plots/confusion_ensemble.png"]["content_type"] == "image/png"
    assert m["extra"]["training"]["profile"] == "smoke"
    for name in (
        "config.json",
        "manifest.csv",
        "split.json",
        "train.log",
        "bundle.json",
        "eval/metrics.json",
        "eval/report.md",
        "eval/roc_ensemble.png",
    ):
        assert (run_dir / name).is_file(), name
    assert "DEMO" in version.notes
    # The review threshold: chosen on the validation split, stored on the version with its
    # figures, written to the run's metrics and report.
    figures = m["review_threshold"]
    split = json.loads((run_dir / "split.json").read_text())
    assert figures["split"] == "validation" and figures["target_accuracy"] == 0.99
    assert figures["validation_images"] == len(split["val"]) > 0
    assert version.review_threshold == figures["value"] and 0 < figures["value"] <= 1
    assert figures["above_threshold"] + figures["below_threshold"] == len(split["val"])
    assert figures["coverage"] == pytest.approx(figures["above_threshold"] / len(split["val"]))
    low, high = figures["accuracy_above_ci95"]
    assert low <= figures["accuracy_above"] <= high
    assert (figures["accuracy_above"] >= 0.99) is figures["target_met"]
    on_disk = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert on_disk["review_threshold"] == figures
    assert "Review threshold: " in (run_dir / "eval" / "report.md").read_text()
    # MobileNetV2 trained on 32 px windows and is registered (and served) at its 48 px input
    mobilenet = next(x for x in version.members if x["name"] == "MobileNetV2")
    assert mobilenet["input_size"] == 48
    info = json.loads((run_dir / "members" / "MobileNetV2.json").read_text())
    assert info["train_crop"] == 32
    # every member got a validation-fitted temperature and class bias, kept only if it did
    # not lower the validation macro-F1
    for member in version.members:
        member_info = json.loads((run_dir / "members" / f"{member['name']}.json").read_text())
        cal = member_info["calibration"]
        assert cal["temperature"] > 0 and len(cal["bias"]) == 4 and cal["bias"][0] == 0
        kept = cal["val_after"]["macro_f1"] >= cal["val_before"]["macro_f1"]
        assert cal["kept"] is kept
        assert member_info["val"] == (cal["val_after"] if kept else cal["val_before"])

    # The registered version, loaded from storage, scores the test split as recorded.
    ctx = train.open_run(run_dir)
    test_dir = tmp_path / "test-split"
    for i in ctx.split.test:
        entry = ctx.manifest.entries[i]
        dst = test_dir / entry.label / entry.path.split("/")[-1]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(ctx.manifest.abspath(entry).read_bytes())
    capsys.readouterr()
    call_command(
        "evaluate_model",
        "--data-dir",
        str(test_dir),
        "--version",
        str(version.version),
        "--json",
        "--bootstrap",
        "50",
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["test_set"]["images"] == m["test_set"]["images"]
    assert printed["ensemble"]["accuracy"] == pytest.approx(m["ensemble"]["accuracy"])
    assert printed["ensemble"]["confusion_matrix"] == m["ensemble"]["confusion_matrix"]
    assert printed["test_set"]["tta"] == "none"

    # The model card renders from the run's exported summary files.
    card = tmp_path / "docs" / "model-card.md"
    call_command(
        "render_model_card",
        "--from-run",
        str(run_dir),
        "--summary",
        str(tmp_path / "docs" / "model-card" / "run"),
        "--out",
        str(card),
        "--version",
        str(version.version),
    )
    text = card.read_text()
    assert f"{m['ensemble']['macro_f1']:.4f}" in text and "No patient-level split" in text
    assert f"flagged **{m['out_of_domain']['flagged']} of" in text
    assert (tmp_path / "docs" / "model-card" / "confusion_ensemble.png").is_file()


def test_a_run_bundle_registers_and_evaluates_with_other_views(
    tmp_path, small_run, settings, capsys
):
    """The run folder is a bundle another machine could hand over; ``--tta`` evaluates the
    registered version as if it were served with other test-time views."""
    import shutil

    settings.VAR_DIR = tmp_path / "var"
    run_dir = tmp_path / "run"
    shutil.copytree(small_run[0].run_dir, run_dir)
    metrics = small_run[1]
    call_command("register_model", str(run_dir))
    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.CANDIDATE
    # trained on synthetic smears: registered as a DEMO, whatever the command line said
    assert version.is_demo and "DEMO" in version.notes
    # the registered artifacts are the run's member files, byte for byte
    assert [x["sha256"] for x in version.members] == [
        sha256_file(run_dir / "members" / f"{x['name']}.keras") for x in version.members
    ]
    # the review threshold comes from the bundle's metrics, with the figures it was chosen on
    assert version.review_threshold == metrics["review_threshold"]["value"]
    assert version.metrics["review_threshold"] == metrics["review_threshold"]
    # the segmented twins were scored with the run
    assert version.metrics["extra"]["segmented"]["ensemble"]["accuracy"] is not None

    capsys.readouterr()
    call_command(
        "evaluate_model",
        "--run-dir",
        str(run_dir),
        "--version",
        str(version.version),
        "--tta",
        "flips",
        "--json",
        "--bootstrap",
        "10",
    )
    flipped = json.loads(capsys.readouterr().out)
    assert flipped["test_set"]["tta"] == flipped["test_set"]["tta_override"] == "flips"
    assert flipped["test_set"]["images"] == metrics["test_set"]["images"]
    version.refresh_from_db()
    assert version.preprocessing["tta"] == "none"  # the version itself is unchanged

    call_command("activate_model", str(version.version))
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.ACTIVE
    # the same bundle handed over again is a new version with the same artifacts
    call_command("register_model", str(run_dir))
    again = ModelVersion.objects.order_by("-version").first()
    assert again.version == version.version + 1 and again.is_demo
    assert [x["sha256"] for x in again.members] == [x["sha256"] for x in version.members]


def test_register_model_never_activates_an_ensemble_with_a_collapsed_member(
    tmp_path, small_run, settings
):
    """``retrain --activate`` registered such an ensemble as a candidate; the same run handed
    over as a bundle (``register_model --activate``) went straight to the clinicians."""
    import shutil

    settings.VAR_DIR = tmp_path / "var"
    run_dir = tmp_path / "run"
    shutil.copytree(small_run[0].run_dir, run_dir)
    bundle = json.loads((run_dir / "bundle.json").read_text())
    bundle["synthetic"] = False  # as if trained on real smears (a DEMO is never guarded)
    (run_dir / "bundle.json").write_text(json.dumps(bundle))
    metrics_file = run_dir / bundle["metrics"]
    metrics = json.loads(metrics_file.read_text())
    collapsed = next(iter(metrics["members"]))
    metrics["members"][collapsed]["collapsed"] = True
    metrics_file.write_text(json.dumps(metrics))

    call_command("register_model", str(run_dir), "--activate")

    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.CANDIDATE
    assert f"NOT ACTIVATED: collapsed ['{collapsed}']" in version.notes


def test_evaluate_model_refuses_a_run_whose_split_is_not_held_out_from_the_version(
    tmp_path, small_run, settings
):
    """``evaluate_model --run-dir RUN`` scored whatever version it was given (by default the
    active one) on RUN's "test" split, though another run's version may have trained on it."""
    import shutil
    from types import SimpleNamespace

    from django.core.management.base import CommandError

    from ml_training import train
    from ml_training.scoring import foreign_run_reason

    settings.VAR_DIR = tmp_path / "var"
    run_dir = tmp_path / "run"
    shutil.copytree(small_run[0].run_dir, run_dir)
    call_command("register_model", str(run_dir))
    version = ModelVersion.objects.get()
    assert version.metrics["test_set"]["split_sha256"] == small_run[0].split.digest(
        small_run[0].manifest
    )
    other = tmp_path / "other-run"  # the same images, split otherwise
    shutil.copytree(run_dir, other)
    split = json.loads((other / "split.json").read_text())
    split["train"][0], split["test"][0] = split["test"][0], split["train"][0]
    (other / "split.json").write_text(json.dumps(split))
    args = ["evaluate_model", "--run-dir", str(other), "--version", "1", "--json"]

    with pytest.raises(CommandError, match="not held out from version 1"):
        call_command(*args, "--bootstrap", "0")
    foreign = evaluate_registered_source(args + ["--bootstrap", "0", "--foreign-run"])
    assert "NOT held out from version 1" in foreign
    # A version registered before the digest was recorded: its seed and data are compared.
    legacy = SimpleNamespace(metrics={"test_set": {"split_seed": 7}}, data_fingerprint="")
    assert "seed" in foreign_run_reason(legacy, train.open_run(run_dir))


def evaluate_registered_source(args) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())["test_set"]["source"]


def test_register_model_rejects_a_tampered_bundle(tmp_path, small_run, settings):
    import shutil

    from django.core.management.base import CommandError

    settings.VAR_DIR = tmp_path / "var"
    run_dir = tmp_path / "run"
    shutil.copytree(small_run[0].run_dir, run_dir)
    bundle = json.loads((run_dir / "bundle.json").read_text())
    bundle["members"][0]["sha256"] = "0" * 64
    (run_dir / "bundle.json").write_text(json.dumps(bundle))
    with pytest.raises(CommandError, match="sha256"):
        call_command("register_model", str(run_dir))
    assert not ModelVersion.objects.exists()


def _small_profile(tmp_path):
    """The smoke profile restricted to two fast members (the rest of the recipe unchanged)."""
    smoke = json.loads((PROFILES_DIR / "smoke.json").read_text())
    smoke["name"] = "smoke-2"
    smoke["members"] = [m for m in smoke["members"] if m["name"] in ("MobileNetV2", "ResNet50")]
    path = tmp_path / "smoke-2.json"
    path.write_text(json.dumps(smoke))
    return path


def test_same_seed_same_split_and_metrics(tmp_path, smears_with_twins, small_run, settings):
    settings.VAR_DIR = tmp_path / "var"
    a, ma = small_run
    b, mb = _small_retrain(tmp_path, smears_with_twins)
    assert (a.split.train, a.split.val, a.split.test) == (b.split.train, b.split.val, b.split.test)
    assert a.config["data_fingerprint"] == b.config["data_fingerprint"]
    for name in ("accuracy", "macro_f1", "ece"):
        assert ma["ensemble"][name] == pytest.approx(mb["ensemble"][name], abs=METRIC_TOLERANCE)
    for member in ma["members"]:
        assert (
            ma["members"][member]["confusion_matrix"] == mb["members"][member]["confusion_matrix"]
        )
    assert call_command("compare_runs", str(a.run_dir), str(b.run_dir)) is None
    ha = json.loads((a.run_dir / "members" / "MobileNetV2.json").read_text())["history"]
    hb = json.loads((b.run_dir / "members" / "MobileNetV2.json").read_text())["history"]
    assert ha[0]["loss"] == pytest.approx(hb[0]["loss"], rel=1e-4)


def test_resume_skips_finished_members(tmp_path, smears, settings):
    settings.VAR_DIR = tmp_path / "var"
    profile = _small_profile(tmp_path)
    ctx = train.prepare_run(data_dir=smears, profile=profile, seed=2, run_dir=tmp_path / "run")
    train.train_run(ctx, progress=False, only=["MobileNetV2"])
    before = (ctx.run_dir / "members" / "MobileNetV2.keras").stat().st_mtime_ns
    ctx2, _, metrics = pipeline.retrain(resume=ctx.run_dir, register=False, progress=False)
    assert (ctx2.run_dir / "members" / "MobileNetV2.keras").stat().st_mtime_ns == before
    assert set(metrics["members"]) == {"MobileNetV2", "ResNet50"}
    assert ctx2.read_state()["status"] == "evaluated"


def test_missing_imagenet_weights_is_a_clear_error(tmp_path, smears):
    with pytest.raises(FileNotFoundError, match="ImageNet weights for"):
        train.prepare_run(
            data_dir=smears, profile="smoke", run_dir=tmp_path / "r", weights_dir=tmp_path
        )


def test_segmented_twins_and_mask_iou_are_reported(small_run):
    """A dataset root with Original/ and Segmented/ (like the Taleqani release): the run
    trains on Original, scores the Segmented twins of its test split too, and reports how
    well our segmentation matches theirs."""
    ctx, metrics = small_run
    assert ctx.manifest.root.endswith("Original")
    iou = metrics["extra"]["segmentation_iou"]
    assert iou["available"] and iou["mean_iou"] > 0.99  # the reference is our own segmentation
    seg = metrics["extra"]["segmented"]
    assert seg["test_set"]["images"] == metrics["test_set"]["images"]
    assert seg["ensemble"]["accuracy"] is not None


def test_one_cross_validation_fold_end_to_end(tmp_path, smears, settings, capsys):
    settings.VAR_DIR = tmp_path / "var"
    run_dir = tmp_path / "fold2"
    profile_path = _small_profile(tmp_path)
    profile = json.loads(profile_path.read_text())
    profile["train"]["prior_correction"] = True
    profile_path.write_text(json.dumps(profile))
    call_command(
        "retrain",
        "--data-dir",
        str(smears),
        "--profile",
        str(profile_path),
        "--run-dir",
        str(run_dir),
        "--cv-folds",
        "3",
        "--cv-fold",
        "2",
        "--no-register",
        verbosity=0,
    )
    assert not ModelVersion.objects.exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["cv"] == {"folds": 3, "fold": 2}
    split = json.loads((run_dir / "split.json").read_text())
    assert split["method"].startswith("StratifiedGroupKFold, test = fold 2 of 3")
    total = sum(len(split[k]) for k in ("train", "val", "test"))
    assert abs(len(split["test"]) / total - 1 / 3) < 0.1
    capsys.readouterr()
    call_command("cv_report", str(run_dir), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["folds_present"] == [2] and not summary["complete"]
    assert summary["test_images"] == [len(split["test"])]
    assert set(summary["models"]) == {"ensemble", "MobileNetV2", "ResNet50"}
    # the prior correction is kept only when it does not lower the validation macro-F1
    for name in ("MobileNetV2", "ResNet50"):
        info = json.loads((run_dir / "members" / f"{name}.json").read_text())
        pc = info["prior_correction"]
        kept = pc["val_after"]["macro_f1"] >= pc["val_before"]["macro_f1"]
        assert pc["kept"] is kept
        # the smoke profile calibrates too: it starts from the member the correction left
        cal = info["calibration"]
        assert cal["val_before"] == (pc["val_after"] if kept else pc["val_before"])
        assert info["val"] == (cal["val_after"] if cal["kept"] else cal["val_before"])
