"""Cross-validation summary (``ml_training.crossval`` / ``manage.py cv_report``) over run folders.

The folders here hold only what the summary reads (config.json and eval/metrics.json); a real
cross-validation fold trained end to end is in test_pipeline_smoke.py."""

import json

import pytest
from django.core.management import CommandError, call_command

from ml_training import crossval


def _fold(
    tmp_path,
    fold,
    *,
    folds=3,
    seed=42,
    fingerprint="abc",
    ens_f1=0.9,
    name=None,
    epochs=8,
    steps=None,
):
    run = tmp_path / (name or f"fold{fold}")
    (run / "eval").mkdir(parents=True)
    config = {
        "seed": seed,
        "profile": {
            "name": "cpu",
            "description": f"fold {fold}",
            "train": {"steps_per_epoch": steps},
            "members": [{"name": "ResNet50", "epochs": epochs, "steps_per_epoch": steps}],
        },
        "data_fingerprint": fingerprint,
        "cv": {"folds": folds, "fold": fold},
    }
    (run / "config.json").write_text(json.dumps(config))

    def scores(f1):
        return {
            "accuracy": f1 + 0.01,
            "macro_f1": f1,
            "cohen_kappa": f1 - 0.02,
            "roc_auc_macro": 0.99,
            "ece": 0.05,
        }

    metrics = {
        "ensemble": scores(ens_f1),
        "members": {"ResNet50": scores(ens_f1 - 0.05), "VGG16": scores(ens_f1 - 0.1)},
        "test_set": {"images": 100 + fold},
        "extra": {"training": {"members": {"ResNet50": {"steps_per_epoch": 94}}}},
    }
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_summary_means_and_spread(tmp_path):
    runs = [_fold(tmp_path, f, ens_f1=v) for f, v in ((2, 0.92), (1, 0.90), (3, 0.94))]
    s = crossval.summarise(runs)
    assert s["complete"] and s["folds_present"] == [1, 2, 3]
    assert s["test_images"] == [101, 102, 103]
    ens = s["models"]["ensemble"]
    assert [p["macro_f1"] for p in ens["per_fold"]] == [0.90, 0.92, 0.94]
    assert ens["mean"]["macro_f1"] == pytest.approx(0.92)
    assert ens["sd"]["macro_f1"] == pytest.approx(0.02)
    assert s["models"]["VGG16"]["mean"]["macro_f1"] == pytest.approx(0.82)
    text = crossval.report_markdown(s)
    assert "0.9200 ± 0.0200" in text and "INCOMPLETE" not in text


def test_missing_folds_are_reported(tmp_path, capsys):
    call_command("cv_report", str(_fold(tmp_path, 1)), str(_fold(tmp_path, 3)))
    out = capsys.readouterr().out
    assert "INCOMPLETE: 3 folds expected" in out
    call_command("cv_report", str(tmp_path / "fold1"), "--json")
    assert json.loads(capsys.readouterr().out)["complete"] is False


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"seed": 7}, "seed"),
        ({"fingerprint": "xyz"}, "data"),
        ({"folds": 5}, "number of folds"),
        ({"fold": 1, "name": "again"}, "more than once"),
        ({"epochs": 6}, "profile settings"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_runs_that_do_not_belong_together_are_refused(tmp_path, other, message):
    first = _fold(tmp_path, 1)
    second = _fold(tmp_path, other.pop("fold", 2), **other)
    with pytest.raises(CommandError, match=message):
        call_command("cv_report", str(first), str(second))


def test_steps_fixed_at_what_the_default_gave_are_the_same_training(tmp_path):
    """A fold run with the steps left to a balanced epoch (94 here) and one with the steps
    fixed at 94 trained alike; a fold recording other steps did not."""
    default, fixed = _fold(tmp_path, 1), _fold(tmp_path, 2, steps=94)
    assert crossval.summarise([default, fixed])["folds_present"] == [1, 2]
    other = _fold(tmp_path, 3, steps=80)
    metrics = json.loads((other / "eval" / "metrics.json").read_text())
    metrics["extra"]["training"]["members"]["ResNet50"]["steps_per_epoch"] = 80
    (other / "eval" / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="profile settings"):
        crossval.summarise([default, fixed, other])


def test_a_run_that_is_not_a_cv_fold_is_refused(tmp_path):
    run = _fold(tmp_path, 1)
    config = json.loads((run / "config.json").read_text())
    config["cv"] = None
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CommandError, match="not a cross-validation run"):
        call_command("cv_report", str(run))
    (run / "eval" / "metrics.json").unlink()
    with pytest.raises(CommandError, match="not been evaluated"):
        call_command("cv_report", str(run))
