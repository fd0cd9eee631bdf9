import numpy as np
import pytest

from ml_training import evaluate, plots

CLASSES = ["Benign", "Early", "Pre", "Pro"]


def _probs(pred, k=4, conf=0.9):
    p = np.full((len(pred), k), (1 - conf) / (k - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def test_score_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score, f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.8, y, rng.integers(0, 4, 200))
    s = evaluate.score(y, _probs(pred), CLASSES, n_boot=200)
    assert s["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert s["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert s["cohen_kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    assert s["accuracy"] == pytest.approx((y == pred).mean())
    lo, hi = s["ci95"]["macro_f1"]
    assert lo <= s["macro_f1"] <= hi
    assert np.array(s["confusion_matrix"]).sum() == 200
    assert not s["collapsed"]
    # constant confidence 0.9 with ~85% accuracy: ECE is the gap
    assert s["ece"] == pytest.approx(abs(0.9 - s["accuracy"]), abs=1e-9)


def test_macro_f1_counts_a_class_that_is_predicted_but_absent_from_the_labels():
    """No Pro image in the set, two Pre images called Pro: 0.963 was reported, sklearn 0.722."""
    from sklearn.metrics import f1_score

    y = np.repeat([0, 1, 2], 10)
    pred = y.copy()
    pred[[20, 21]] = 3
    s = evaluate.score(y, _probs(pred), CLASSES, n_boot=0)
    assert s["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert s["macro_f1"] == pytest.approx(0.7222, abs=1e-4)


def test_collapsed_member_is_flagged():
    y = np.repeat(np.arange(4), 10)
    s = evaluate.score(y, _probs(np.full(40, 2)), CLASSES, n_boot=0)
    assert s["collapsed"] and s["pred_histogram"] == [0, 0, 40, 0]


def test_agreement_shares():
    members = np.array([[0, 1, 2, 3], [0, 1, 2, 0], [0, 2, 1, 1]])
    ens = np.array([0, 1, 2, 3])
    ag = evaluate.agreement(members, ens, ["a", "b", "c"], np.array([0, 1, 2, 3]))
    assert ag["unanimous"] == 0.25 and ag["majority"] == 0.5 and ag["split"] == 0.25
    assert ag["pairwise"]["a"]["b"] == 0.75


def test_plots_are_written(tmp_path):
    y = np.repeat(np.arange(4), 5)
    s = evaluate.score(y, _probs(y), CLASSES, n_boot=10)
    plots.plot_confusion(s["confusion_matrix"], CLASSES, "t", tmp_path / "c.png")
    plots.plot_roc(y, _probs(y), CLASSES, "t", tmp_path / "r.png")
    plots.plot_reliability(s["reliability"], s["ece"], "t", tmp_path / "e.png")
    for name in ("c.png", "r.png", "e.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_ece_judges_the_voted_label_and_its_probability():
    """Three members vote Early, two are sure of Benign: the mean's arg-max is Benign, but the
    person sees Early at its mean probability 0.4, and Early is right. The calibration error
    is of that: |1 - 0.4|, not of Benign's 0.56 judged wrong."""
    y = np.array([1])
    probs = np.array([[0.56, 0.40, 0.02, 0.02]])
    s = evaluate.score(y, probs, CLASSES, y_pred=np.array([1]), n_boot=0)
    assert s["ece"] == pytest.approx(0.6)
    assert s["reliability"][0]["accuracy"] == 1.0
    assert evaluate.score(y, probs, CLASSES, n_boot=0)["ece"] == pytest.approx(0.56)
