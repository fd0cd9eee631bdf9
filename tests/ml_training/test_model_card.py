"""The model card's error summary (which names the clinically worst error) and its caveats."""

import shutil

from ml_training.card_results import error_summary
from ml_training.model_card import initial_weights_note, wall_clock_note
from tests.ml_training.run_files import NAMES, fake_run


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


def test_card_renders_from_the_exported_summary_without_machine_paths(tmp_path, settings):
    from django.core.management import call_command

    settings.BASE_DIR = tmp_path / "repo"
    run = fake_run(
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
    assert "unanimous on 92.0% of test images" in text
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
    run = fake_run(tmp_path / "released", data)
    folds = []
    for fold, f1 in ((1, 0.97), (2, 0.98), (3, 0.99)):
        fold_dir = fake_run(tmp_path / f"fold{fold}", data, cv={"folds": 3, "fold": fold})
        metrics_path = fold_dir / "eval" / "metrics.json"
        metrics = __import__("json").loads(metrics_path.read_text())
        metrics["ensemble"]["macro_f1"] = f1
        metrics_path.write_text(__import__("json").dumps(metrics))
        folds.append(str(fold_dir))
    summary, card = tmp_path / "docs" / "model-card" / "run", tmp_path / "card.md"
    call_command(
        "render_model_card", "--from-run", str(run), "--summary", str(summary), "--out", str(card)
    )
    assert "not run for this version" in card.read_text()
    # folds run on different days add up: two now, the third later
    render = ["render_model_card", "--summary", str(summary), "--out", str(card), "--cv"]
    call_command(*render, *folds[:2])
    assert "folds 1, 2 only" in card.read_text()
    call_command(*render, folds[2])
    text = card.read_text()
    assert sorted(p.name for p in (summary.parent / "cv").iterdir()) == [
        "fold-1",
        "fold-2",
        "fold-3",
    ]
    assert "ensemble macro-F1 **0.9800 ± 0.0100** (mean ± SD over folds" in text
    assert "beside **0.9877** on the test split" in text
    assert "| **Voted ensemble** | 0.9700 · 0.9800 · 0.9900 | 0.9800 ± 0.0100 |" in text
    assert "other data, profile or seed" not in text
    assert str(tmp_path) not in text
    # the committed folds alone are enough to summarise again
    for fold in folds:
        shutil.rmtree(fold)
    call_command(*render)
    assert card.read_text() == text


def test_card_records_a_probe_folder_by_counts_only(tmp_path, settings):
    import json

    from django.core.management import call_command

    settings.BASE_DIR = tmp_path / "repo"
    run = fake_run(tmp_path / "repo" / "var" / "runs" / "r1", tmp_path / "data")
    folder = tmp_path / "shared" / "bccd-ood"
    results = [
        {
            "file": f"BloodImage_{i}.jpg",
            "out_of_domain": i != 3,
            "ood_score": 1.0 + i,
            "ood_parts": {"features": 0.6 * i, "image": 1.0 + i},
        }
        for i in (1, 2, 3)
    ]
    results[2]["ood_parts"] = {"features": 0.4, "image": 0.5}
    results[2]["ood_score"] = 0.5
    report = tmp_path / "probe.json"
    report.write_text(
        json.dumps(
            {"version": 3, "images": 3, "out_of_domain": 2, "unreadable": 0, "detector": True,
             "results": results}
        )
    )  # fmt: skip
    summary, card = tmp_path / "repo" / "docs" / "model-card" / "run", tmp_path / "card.md"
    call_command(
        "render_model_card", "--from-run", str(run), "--summary", str(summary), "--out",
        str(card), "--probe", f"{folder}={report}",
    )  # fmt: skip
    text = card.read_text()
    # the features alone flag only the second (1.2); the image statistics the first two
    row = "| `../shared/bccd-ood` | 2 of 3 | 66.7% | 1 | 2 | 0.50 | 2.00 | `python manage.py "
    assert row + "classify_folder ../shared/bccd-ood --version 3 --json` |" in text
    assert "BloodImage" not in (summary / "probes.json").read_text()


def test_card_records_whether_a_rerun_of_the_command_agreed(tmp_path, settings):
    import json

    from django.core.management import call_command

    from ml_training.reproducibility import compare

    settings.BASE_DIR = tmp_path / "repo"
    runs = settings.BASE_DIR / "var" / "runs"
    first = fake_run(runs / "r1", tmp_path / "data")
    second = fake_run(runs / "r2", tmp_path / "data")
    summary, card = settings.BASE_DIR / "docs" / "model-card" / "run", tmp_path / "card.md"
    render = ["render_model_card", "--summary", str(summary), "--out", str(card)]
    comparison = tmp_path / "compare.json"
    comparison.write_text(json.dumps(compare(first, second)))
    call_command(*render, "--from-run", str(first), "--rerun", str(comparison))
    text = card.read_text()
    assert "(55.0 and 55.0 min): **the two runs agree**" in text
    assert "`python manage.py compare_runs var/runs/r1 var/runs/r2`" in text
    assert str(tmp_path) not in text

    metrics_path = second / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["ensemble"]["macro_f1"] -= 0.01
    metrics_path.write_text(json.dumps(metrics))
    comparison.write_text(json.dumps(compare(first, second)))
    call_command(*render, "--rerun", str(comparison))
    assert "**the two runs do not agree**" in card.read_text()
