"""The model card's error summary (which names the clinically worst error) and its caveats."""

from ml_training.card_results import error_summary
from ml_training.model_card import initial_weights_note, wall_clock_note

NAMES = ["Benign", "Early", "Pre", "Pro"]


def test_counts_missed_leukaemia_and_orders_confusions():
    cm = [[57, 0, 0, 0], [5, 108, 0, 0], [0, 0, 109, 1], [1, 0, 0, 87]]
    text = error_summary(NAMES, cm)
    assert text.startswith(
        "Errors: 7 test images (5 Early as Benign, 1 Pro as Benign, 1 Pre as Pro)"
    )
    assert "(a missed leukaemia): **6 of 311**" in text
    assert "Benign images called malignant: 0 of 57." in text


def test_no_errors():
    cm = [[3, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]
    assert error_summary(NAMES, cm) == "No test image was misclassified."


def test_wall_clock_note_names_the_capped_members_only():
    info = {
        "A": {"stopped": "time budget (9 min): 8 epochs"},
        "B": {"stopped": "completed"},
        "C": {"stopped": "early stopping after 4 epochs without improvement"},
        "D": {"stopped": "time budget (16 min): 3 epochs"},
    }
    assert wall_clock_note(info).startswith("**Reruns differ**: A, D stopped on their wall-clock")
    assert wall_clock_note({"B": info["B"], "C": info["C"]}) is None


def test_initial_weights_note_follows_the_run():
    profile = {
        "preprocessing": {"input_size": 224},
        "members": [
            {"name": "MobileNetV2", "input_size": 224},
            {"name": "VGG16", "input_size": 64},
        ],
    }
    assert initial_weights_note({"weights_dir": None}, profile) == (
        "Members were trained from scratch (no ImageNet weights); VGG16 (64 px) see the 224 px "
        "field downscaled, to fit the profile's time budget."
    )
    profile["members"].pop()
    assert initial_weights_note({"weights_dir": "/w"}, profile) == (
        "Members were fine-tuned from ImageNet weights read from `--weights-dir`."
    )


# --- rendering from committed summary files ----------------------------------------------------


def _model(f1, cm):
    per_class = {
        c: {"precision": f1, "recall": f1, "f1": f1, "support": sum(row), "roc_auc": 0.999}
        for c, row in zip(NAMES, cm, strict=True)
    }
    return {
        "accuracy": f1,
        "macro_f1": f1,
        "weighted_f1": f1,
        "cohen_kappa": f1,
        "roc_auc_macro": 0.999,
        "ece": 0.02,
        "collapsed": False,
        "ci95": {"accuracy": [f1 - 0.02, f1 + 0.01], "macro_f1": [f1 - 0.03, f1 + 0.01]},
        "per_class": per_class,
        "confusion_matrix": cm,
    }


def _fake_run(run_dir, data_dir, *, cv=None):
    """The files retrain writes that the card is made from, with the machine's paths in them."""
    import json

    cm = [[57, 0, 0, 0], [2, 111, 0, 0], [0, 0, 110, 0], [0, 0, 1, 87]]
    members = ("MobileNetV2", "ResNet50")
    profile = {
        "name": "cpu",
        "preprocessing": {"input_size": 224, "interpolation": "area", "tta": "flips"},
        "augment": {"rotation": 0.1, "hue": 0.0},
        "train": {
            "optimizer": "adamw",
            "learning_rate": 0.001,
            "weight_decay": 0.0001,
            "warmup_epochs": 0.5,
            "label_smoothing": 0.05,
            "dropout": 0.3,
            "bn_momentum": 0.9,
            "bn_refresh_batches": 16,
        },
        "members": [{"name": n, "input_size": 224, "epochs": 4} for n in members],
    }
    files = {
        "config.json": {
            "profile": profile,
            "seed": 42,
            "cv": cv,
            "code_version": "abc1234",
            "data_dir": str(data_dir),
            "data_fingerprint": "f" * 64,
            "created_at": "2026-12-01T00:04:37+00:00",
        },
        "split.json": {
            "method": "StratifiedGroupKFold",
            "train": ["Benign/a.jpg"],
            "val": [],
            "test": [],
            "counts": {
                p: {c: n for c, n in zip(NAMES, counts, strict=True)}
                for p, counts in (
                    ("train", [288, 563, 550, 436]),
                    ("val", [58, 112, 110, 88]),
                    ("test", [57, 113, 110, 88]),
                )
            },
        },
        "state.json": {
            "history": [{"status": "registered", "at": "2026-12-01T00:58:00+00:00"}],
            "total_seconds_this_session": 3300.0,
        },
        "ood.json": {
            "method": "class-conditional Mahalanobis",
            "feature_threshold": 2.5,
            "statistics_threshold": 9.1,
            "min_stained_share": 0.01,
            "feature_pass_quantile": 0.98,
            "statistics_pass_quantile": 0.995,
            "statistics": ["L mean"],
            "train_images": 1837,
            "train_views": "single view",
            "val_images": 368,
            "val_pass_share": 0.978,
        },
        "calibration.json": {
            "method": "temperature",
            "temperature": 0.27,
            "fitted_on": "validation split",
            "val_ece_before": 0.05,
            "val_ece_after": 0.009,
        },
        "eval/metrics.json": {
            "ensemble": {**_model(0.9877, cm), "agreement": {}},
            "members": {n: _model(0.98, cm) for n in members},
            "test_set": {"images": 368, "fingerprint": "f" * 64, "source": f"{data_dir} (test)"},
            "out_of_domain": {"flagged": 5, "total": 368, "share": 0.0136, "detector": True},
            "in_domain": {"images": 363, "ensemble": _model(0.9899, cm)},
            "extra": {
                "manifest": {"images": 2573, "per_class": dict.fromkeys(NAMES, 1)},
                "training": {
                    "train_seconds_sum": 2700,
                    "reproducible": True,
                    "machine": {"cpu_count": 2, "processor": "x86_64"},
                    "weights": "none (from scratch)",
                },
            },
        },
    }
    for name in members:
        files[f"members/{name}.json"] = {
            "epochs_run": 4,
            "planned_epochs": 4,
            "best_epoch": 4,
            "stopped": "completed",
            "val": {"macro_f1": 0.98},
            "checkpoint": str(run_dir / "members" / f"{name}.keras"),
        }
    for name, payload in files.items():
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload))
    return run_dir


def test_card_renders_from_the_exported_summary_without_machine_paths(tmp_path, settings):
    from django.core.management import call_command

    settings.BASE_DIR = tmp_path / "repo"
    run = _fake_run(
        settings.BASE_DIR / "var" / "runs" / "r1", tmp_path / "shared" / "all-taleqani" / "Original"
    )
    summary = settings.BASE_DIR / "docs" / "model-card" / "run"
    card = settings.BASE_DIR / "docs" / "model-card.md"
    call_command(
        "render_model_card", "--from-run", str(run), "--version", "3", "--summary", str(summary),
        "--out", str(card),
    )  # fmt: skip
    text = card.read_text()
    exported = "".join(p.read_text() for p in summary.rglob("*.json"))
    for written in (text, exported):
        assert str(tmp_path) not in written
    assert "`../shared/all-taleqani/Original`" in text
    assert "--data-dir ../shared/all-taleqani/Original --profile cpu --seed 42" in text
    assert "var/runs/r1/members/MobileNetV2.keras" in exported
    assert "Model version: v3, profile `cpu`" in text
    assert "macro-F1 **0.9877** (95% CI 0.9577–0.9977)" in text
    assert "**not run for this version**" in text
    assert "**2 of 311** (0.64%; target ≤ 0.5%: **not met**)" in text
    assert "flagged **5 of 368** (1.4%)" in text
    assert "| test | 57 | 113 | 110 | 88 | 368 |" in text
    assert "| MobileNetV2 | 224 | whole | float32 | 0.001 | 4 / 4 | 4 | 0.9800 |" in text

    # re-rendered from the committed files alone: the run folder is gone
    import shutil

    shutil.rmtree(run)
    card.unlink()
    call_command("render_model_card", "--summary", str(summary), "--out", str(card))
    assert card.read_text() == text


def test_card_states_the_cross_validation_beside_the_test_figure(tmp_path, settings):
    from django.core.management import call_command

    settings.BASE_DIR = tmp_path
    data = tmp_path / "data"
    run = _fake_run(tmp_path / "released", data)
    folds = []
    for fold, f1 in ((1, 0.97), (2, 0.98), (3, 0.99)):
        fold_dir = _fake_run(tmp_path / f"fold{fold}", data, cv={"folds": 3, "fold": fold})
        metrics_path = fold_dir / "eval" / "metrics.json"
        metrics = __import__("json").loads(metrics_path.read_text())
        metrics["ensemble"]["macro_f1"] = f1
        metrics_path.write_text(__import__("json").dumps(metrics))
        folds.append(str(fold_dir))
    summary, card = tmp_path / "summary" / "run", tmp_path / "card.md"
    call_command(
        "render_model_card", "--from-run", str(run), "--summary", str(summary), "--out", str(card)
    )
    assert "not run for this version" in card.read_text()
    call_command("render_model_card", "--summary", str(summary), "--out", str(card), "--cv", *folds)
    text = card.read_text()
    assert "ensemble macro-F1 **0.9800 ± 0.0100** (mean ± SD over folds" in text
    assert "beside **0.9877** on the test split" in text
    assert "| **Voted ensemble** | 0.9700 · 0.9800 · 0.9900 | 0.9800 ± 0.0100 |" in text
    assert str(tmp_path) not in text
