"""The review threshold chosen on validation figures: hand-made arrays, no model."""

import numpy as np
import pytest

from inference.voting import vote
from ml_training import review_threshold as rt


def test_the_smallest_threshold_that_keeps_the_target_accuracy():
    # sorted by confidence: 100 right at 0.95..0.99, one wrong at 0.90, 9 right at 0.80
    conf = [0.99] * 50 + [0.95] * 50 + [0.90] + [0.80] * 9
    right = [True] * 100 + [False] + [True] * 9
    figures = rt.choose_threshold(conf, right)
    # >= 0.80: 109/110 = 0.9909 reaches 0.99 and is the smallest candidate
    assert figures["value"] == 0.80
    assert figures["target_met"] is True
    assert (figures["above_threshold"], figures["correct_above"]) == (110, 109)
    assert figures["coverage"] == 1.0 and figures["accuracy_below"] is None
    assert figures["split"] == "validation" and figures["target_accuracy"] == 0.99


def test_a_wrong_image_among_fewer_confident_ones_raises_the_threshold():
    conf = [0.99] * 99 + [0.90] + [0.80] * 10
    right = [True] * 99 + [False] + [False] * 5 + [True] * 5
    figures = rt.choose_threshold(conf, right)
    # >= 0.90: 99/100 = 0.99 (exactly the target); >= 0.80: 104/110 = 0.945
    assert figures["value"] == 0.90
    assert figures["above_threshold"] == 100 and figures["accuracy_above"] == pytest.approx(0.99)
    assert figures["below_threshold"] == 10 and figures["accuracy_below"] == 0.5
    assert figures["coverage"] == pytest.approx(100 / 110)


def test_ties_stay_together_on_one_side():
    # two images at 0.9, one right and one wrong: the threshold cannot split them
    conf = [0.95] * 10 + [0.9, 0.9]
    right = [True] * 10 + [True, False]
    figures = rt.choose_threshold(conf, right)
    assert figures["value"] == 0.95 and figures["above_threshold"] == 10
    assert figures["accuracy_below"] == 0.5


def test_a_wrong_most_confident_image_does_not_stop_a_lower_threshold():
    # the most confident image is wrong, and so are the two least confident ones
    conf = np.linspace(0.99, 0.5, 200)
    right = np.ones(200, bool)
    right[[0, 198, 199]] = False
    figures = rt.choose_threshold(conf, right)
    # the top 198 images: 197/198 = 0.9949; with the 199th: 197/199 = 0.98995 < 0.99
    assert figures["value"] == pytest.approx(conf[197])
    assert (figures["above_threshold"], figures["correct_above"]) == (198, 197)
    assert rt.choose_threshold(conf, right, target=0.996)["target_met"] is False


def test_when_even_the_most_confident_miss_the_target_the_highest_probability_is_used():
    conf = [0.97, 0.97, 0.9, 0.6]
    right = [True, False, True, True]
    figures = rt.choose_threshold(conf, right)
    assert figures["target_met"] is False
    assert figures["value"] == 0.97
    assert (figures["above_threshold"], figures["correct_above"]) == (2, 1)
    assert figures["accuracy_above"] == 0.5 and figures["accuracy_below"] == 1.0


def test_the_accuracy_above_has_a_wilson_interval():
    figures = rt.choose_threshold([0.9] * 50, [True] * 50)
    low, high = figures["accuracy_above_ci95"]
    assert high == pytest.approx(1.0) and low == pytest.approx(0.9287, abs=1e-4)
    assert figures["interval"] == "Wilson score, 95%"


def test_wilson_interval_known_values():
    # 8 of 10: the textbook Wilson interval is 0.4902 .. 0.9433
    low, high = rt.wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert rt.wilson_interval(0, 0) is None
    assert rt.wilson_interval(0, 5)[0] == 0.0
    with pytest.raises(ValueError):
        rt.wilson_interval(6, 5)


@pytest.mark.parametrize(
    ("conf", "right"),
    [([], []), ([0.5, 0.6], [True]), ([1.2], [True]), ([float("nan")], [True])],
)
def test_bad_input_is_refused(conf, right):
    with pytest.raises(ValueError):
        rt.choose_threshold(conf, right)


def test_from_the_engines_results_uses_the_vote_and_the_top_mean_probability():
    classes, members = ["Benign", "Early", "Pre", "Pro"], ["a", "b", "c"]
    confident_right = vote([[0.97, 0.01, 0.01, 0.01]] * 3, classes, members)
    # two members vote Pro, but the top MEAN probability is Benign's 0.62
    split = vote(
        [[0.98, 0.0, 0.0, 0.02], [0.45, 0.0, 0.0, 0.55], [0.43, 0.0, 0.0, 0.57]], classes, members
    )
    assert split.label == "Pro" and max(split.probabilities.values()) == pytest.approx(0.62)
    figures = rt.from_results([confident_right, split], [0, 0], classes)
    assert figures["value"] == pytest.approx(0.97)  # the split one was voted wrong
    assert figures["above_threshold"] == 1 and figures["accuracy_below"] == 0.0
    assert rt.from_results([], [], classes) is None


def test_value_summary_and_report_lines():
    figures = rt.choose_threshold([0.99, 0.7], [True, False])
    assert rt.threshold_value({"review_threshold": figures}) == 0.99
    assert rt.threshold_value({}) is None and rt.threshold_value({"review_threshold": None}) is None
    text = rt.summary(figures)
    assert "0.9900" in text and "validation split" in text and "1 of 2" in text
    assert rt.markdown_lines(None) == []
    assert "Review threshold" in rt.markdown_lines(figures)[-1]
    missed = rt.summary(rt.choose_threshold([0.8], [False]))
    assert "NOT met" in missed
