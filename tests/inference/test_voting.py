"""The majority vote (pure NumPy)."""

import numpy as np
import pytest

from inference.voting import MAJORITY, SPLIT, UNANIMOUS, vote, vote_batch, winners

CLASSES = ["Benign", "Early", "Pre", "Pro"]
MEMBERS = ["a", "b", "c", "d", "e"]


def _one_hot(labels, p=0.7):
    rows = []
    for label in labels:
        row = np.full(len(CLASSES), (1 - p) / (len(CLASSES) - 1))
        row[CLASSES.index(label)] = p
        rows.append(row)
    return np.array(rows)


def test_unanimous():
    r = vote(_one_hot(["Pre"] * 5), CLASSES, MEMBERS, inference_ms=12.5)
    assert (r.label, r.votes, r.member_count, r.agreement) == ("Pre", 5, 5, UNANIMOUS)
    assert r.inference_ms == 12.5
    assert [m.label for m in r.members] == ["Pre"] * 5
    assert abs(sum(r.probabilities.values()) - 1) < 1e-6


def test_majority():
    r = vote(_one_hot(["Pro", "Pro", "Pro", "Early", "Benign"]), CLASSES, MEMBERS)
    assert (r.label, r.votes, r.agreement) == ("Pro", 3, MAJORITY)


def test_split_plurality():
    r = vote(_one_hot(["Pro", "Pro", "Early", "Benign", "Pre"]), CLASSES, MEMBERS)
    assert (r.label, r.votes, r.agreement) == ("Pro", 2, SPLIT)


def test_tie_goes_to_the_highest_mean_probability():
    probs = _one_hot(["Early", "Early", "Pre", "Pre", "Benign"])
    probs[2:4] = [[0.05, 0.05, 0.85, 0.05]] * 2  # the Pre voters are more confident
    r = vote(probs, CLASSES, MEMBERS)
    assert (r.label, r.votes, r.agreement) == ("Pre", 2, SPLIT)
    probs[2:4] = [[0.2, 0.2, 0.4, 0.2]] * 2  # now the Early voters are
    assert vote(probs, CLASSES, MEMBERS).label == "Early"


def test_even_members_half_is_not_a_majority():
    r = vote(_one_hot(["Pre", "Pre", "Pro", "Early"]), CLASSES, MEMBERS[:4])
    assert r.agreement == SPLIT


@pytest.mark.parametrize(
    "shape", [(5,), (4, 4), (5, 3), (5, 4, 1)], ids=["1d", "few-members", "few-classes", "3d"]
)
def test_shape_errors(shape):
    with pytest.raises(ValueError, match="expected probabilities of shape"):
        vote(np.zeros(shape), CLASSES, MEMBERS)


def test_vote_batch():
    batch = np.stack([_one_hot(["Pre"] * 5), _one_hot(["Pro"] * 3 + ["Pre"] * 2)])
    results = vote_batch(batch, CLASSES, MEMBERS, inference_ms=3.0)
    assert [r.label for r in results] == ["Pre", "Pro"]
    assert all(r.inference_ms == 3.0 for r in results)


def test_winners_are_the_votes_labels():
    rng = np.random.default_rng(3)
    batch = rng.dirichlet(np.ones(4), size=(300, 5))
    names = ["Benign", "Early", "Pre", "Pro"]
    voted = [names.index(r.label) for r in vote_batch(batch, names, list("abcde"))]
    assert winners(batch).tolist() == voted
    # the vote is not the mean's arg-max in some of them: the case the function exists for
    assert (np.asarray(voted) != batch.mean(axis=1).argmax(axis=1)).any()
