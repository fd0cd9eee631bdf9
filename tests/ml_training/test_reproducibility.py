"""compare_runs: the reproducibility check the README and the model card state."""

import json

import pytest
from django.core.management import CommandError, call_command

from ml_training.reproducibility import METRIC_TOLERANCE, compare
from tests.ml_training.run_files import fake_run


def _edit(path, change):
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def test_identical_runs_agree(tmp_path, capsys):
    a = fake_run(tmp_path / "a", tmp_path / "data")
    b = fake_run(tmp_path / "b", tmp_path / "data")
    call_command("compare_runs", str(a), str(b))
    assert capsys.readouterr().out.strip().endswith("AGREE")


def test_a_figure_beyond_the_tolerance_is_a_disagreement(tmp_path):
    a = fake_run(tmp_path / "a", tmp_path / "data")
    b = fake_run(tmp_path / "b", tmp_path / "data")

    def nudge(m):
        m["members"]["ResNet50"]["ece"] += 10 * METRIC_TOLERANCE

    _edit(b / "eval" / "metrics.json", nudge)
    result = compare(a, b)
    assert not result["agree"] and result["same_split"]
    assert result["largest_difference"] == pytest.approx(10 * METRIC_TOLERANCE)
    with pytest.raises(CommandError, match="do not agree"):
        call_command("compare_runs", str(a), str(b))


def test_another_split_or_confusion_is_a_disagreement(tmp_path):
    a = fake_run(tmp_path / "a", tmp_path / "data")
    b = fake_run(tmp_path / "b", tmp_path / "data")
    _edit(b / "split.json", lambda s: s.update(train=["Benign/b.jpg"]))
    assert not compare(a, b)["same_split"]
    c = fake_run(tmp_path / "c", tmp_path / "data")

    def swap(m):
        m["ensemble"]["confusion_matrix"][1][:2] = [1, 112]

    _edit(c / "eval" / "metrics.json", swap)
    result = compare(a, c)
    assert result["same_split"] and not result["same_confusion_matrices"]
    assert not result["agree"]
