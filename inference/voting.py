"""Majority vote over ensemble members (pure NumPy: no TensorFlow, usable from the web process).

Each member votes for its arg-max class. The label with the most votes wins; a tie between labels
goes to the tied label with the highest mean probability over all members. Agreement is
``unanimous`` when every member voted for the label, ``majority`` when more than half did, and
``split`` otherwise (a plurality or a tie-break decided it).
"""

from dataclasses import dataclass, field

import numpy as np

UNANIMOUS = "unanimous"
MAJORITY = "majority"
SPLIT = "split"


@dataclass(frozen=True)
class MemberResult:
    name: str
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class EnsembleResult:
    label: str
    probabilities: dict[str, float]  # mean over members, per class
    votes: int  # members that voted for ``label``
    member_count: int
    agreement: str
    members: list[MemberResult] = field(default_factory=list)
    inference_ms: float = 0.0
    # The out-of-domain detector's verdict (``inference.ood``); None: the version has none.
    out_of_domain: bool = False
    ood_score: float | None = None  # 1 is the threshold; above it, outside the domain
    ood_parts: dict[str, float] | None = None


def vote(
    member_probs, class_names, member_names, inference_ms: float = 0.0, temperature: float = 1.0
) -> EnsembleResult:
    """Vote over one image. ``member_probs`` has shape (members, classes).

    ``temperature``: the version's calibration of the displayed ensemble probabilities,
    softmax(log(mean) / T), fitted on validation images (``ml_training.calibration``). It keeps
    the order of the classes, so the vote and the tie-break do not depend on it.
    """
    probs = np.asarray(member_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(member_names), len(class_names)):
        raise ValueError(
            f"expected probabilities of shape ({len(member_names)}, {len(class_names)}), "
            f"got {probs.shape}"
        )
    member_choice = probs.argmax(axis=1)
    counts = np.bincount(member_choice, minlength=len(class_names))
    mean = calibrated_mean(probs, temperature)
    winner = _winner(counts, mean)
    votes = int(counts[winner])
    n = len(member_names)
    if votes == n:
        agreement = UNANIMOUS
    elif votes * 2 > n:
        agreement = MAJORITY
    else:
        agreement = SPLIT
    members = [
        MemberResult(
            name=name,
            label=class_names[int(member_choice[i])],
            probabilities=_as_dict(probs[i], class_names),
        )
        for i, name in enumerate(member_names)
    ]
    return EnsembleResult(
        label=class_names[winner],
        probabilities=_as_dict(mean, class_names),
        votes=votes,
        member_count=n,
        agreement=agreement,
        members=members,
        inference_ms=float(inference_ms),
    )


def vote_batch(
    batch_probs, class_names, member_names, inference_ms: float = 0.0, temperature: float = 1.0
):
    """Vote over a batch. ``batch_probs`` has shape (images, members, classes)."""
    return [
        vote(p, class_names, member_names, inference_ms, temperature)
        for p in np.asarray(batch_probs)
    ]


def winners(batch_probs) -> np.ndarray:
    """The voted class index of each image of ``batch_probs`` (images, members, classes)."""
    probs = np.asarray(batch_probs, dtype=np.float64)
    k = probs.shape[-1]
    return np.array(
        [_winner(np.bincount(p.argmax(axis=1), minlength=k), p.mean(axis=0)) for p in probs],
        dtype=np.int64,
    )


def _winner(counts, mean) -> int:
    """The most voted class; a tie goes to the tied class with the highest mean probability
    (a temperature keeps that order, so the tempered or plain mean give the same winner)."""
    tied = np.flatnonzero(counts == counts.max())
    return int(tied[np.argmax(mean[tied])])


def calibrated_mean(member_probs, temperature: float = 1.0) -> np.ndarray:
    """The members' mean probability per class (members, classes) → (classes,), tempered."""
    mean = np.asarray(member_probs, dtype=np.float64).mean(axis=0)
    if temperature == 1.0:
        return mean
    z = np.log(np.clip(mean, 1e-12, 1.0)) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def _as_dict(row, class_names) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(class_names, row, strict=True)}
