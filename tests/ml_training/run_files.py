"""The files an evaluated run folder holds that the model card and compare_runs read, made up
(with the machine's absolute paths in them, as retrain writes them)."""

import json

NAMES = ["Benign", "Early", "Pre", "Pro"]


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


def fake_run(run_dir, data_dir, *, cv=None):
    """The files retrain writes that the card is made from, with the machine's paths in them."""
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
            "ensemble": {
                **_model(0.9877, cm),
                "agreement": {
                    "unanimous": 0.92,
                    "majority": 0.07,
                    "split": 0.01,
                    "accuracy_when_unanimous": 1.0,
                    "accuracy_when_not_unanimous": 0.75,
                    "pairwise": {"MobileNetV2": {"ResNet50": 0.98}},
                },
            },
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
