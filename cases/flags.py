"""Why an image needs a human look: a registry of flag reasons.

Each reason is a rule registered with ``@flag_rule``: a function of the image and its latest
prediction (``None`` when classification failed) that returns a short detail when the image is
flagged, or ``None``. ``services.flags.flags_refresh`` runs every registered rule when a
prediction is saved or a classification fails. A new reason is a new rule in its own module,
imported by its app (``register_flag_rules``); nothing here or in the services changes, and no
migration is needed (``ImageFlag.reason`` is a plain code).
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FlagReason:
    code: str
    label: str  # the badge
    description: str  # what it means, for the badge's title and the docs
    priority: int  # lower first in the review queue
    rule: Callable


REASONS: dict[str, FlagReason] = {}


def flag_rule(code: str, *, label: str, description: str, priority: int = 50):
    """Register ``rule(image, prediction) -> str | None`` as the flag reason ``code``."""

    def register(rule):
        if code in REASONS and REASONS[code].rule is not rule:
            raise ValueError(f"flag reason {code!r} is registered twice")
        REASONS[code] = FlagReason(code, label, description, priority, rule)
        return rule

    return register


def reason(code: str) -> FlagReason:
    """The registered reason, or a plain one for a code no longer registered."""
    return REASONS.get(code) or FlagReason(code, code.replace("_", " "), "", 99, lambda *_: None)


def badges(flags) -> list[tuple[FlagReason, str]]:
    """``(reason, detail)`` for showing stored ``ImageFlag`` rows as badges."""
    return [(reason(f.reason), f.detail) for f in flags]


def evaluate(image, prediction) -> list[tuple[str, str]]:
    """``[(code, detail)]`` of every reason that applies, most urgent first."""
    found = []
    for r in sorted(REASONS.values(), key=lambda r: (r.priority, r.code)):
        detail = r.rule(image, prediction)
        if detail is not None:
            found.append((r.code, str(detail)[:255]))
    return found


# --- The reasons of the classification itself ------------------------------------------------


@flag_rule(
    "failed",
    label="Classification failed",
    description="The model gave no result; a person must look at the image.",
    priority=10,
)
def classification_failed(image, prediction):
    if prediction is None and image.status == image.Status.FAILED:
        return image.error_message or "The classification failed."
    return None


@flag_rule(
    "out_of_domain",
    label="Outside the model's domain",
    description="The image is unlike the images the model version was trained on (another "
    "laboratory's stain or camera, another magnification, or not a blood smear): its label is "
    "withheld and a person must classify it.",
    priority=15,
)
def out_of_domain(image, prediction):
    if prediction is None or not prediction.out_of_domain:
        return None
    parts = prediction.ood_parts or {}
    detail = f"score {prediction.ood_score:.2f} × the detector's threshold"
    if parts:
        detail += f" (members' features {parts.get('features', 0):.2f}, "
        detail += f"colour and texture {parts.get('image', 0):.2f})"
    return detail


def _labelled(prediction) -> bool:
    """A prediction whose label is shown: the vote-based reasons apply only to those."""
    return prediction is not None and not prediction.out_of_domain


@flag_rule(
    "split_vote",
    label="Split vote",
    description="No class won more than half of the members' votes.",
    priority=20,
)
def split_vote(image, prediction):
    if _labelled(prediction) and prediction.agreement == prediction.Agreement.SPLIT:
        return f"{prediction.votes} of {prediction.member_count} members voted {prediction.label}"
    return None


@flag_rule(
    "bare_majority",
    label="Bare majority",
    description="The label won by the smallest majority (3 of 5 members).",
    priority=30,
)
def bare_majority(image, prediction):
    if not _labelled(prediction) or prediction.agreement != prediction.Agreement.MAJORITY:
        return None
    if (prediction.votes - 1) * 2 <= prediction.member_count:
        return f"{prediction.votes} of {prediction.member_count} members voted {prediction.label}"
    return None


@flag_rule(
    "low_confidence",
    label="Below review threshold",
    description="The top mean probability is below the model version's review threshold, "
    "chosen on validation data so that results above it were at least 99% accurate there.",
    priority=40,
)
def below_review_threshold(image, prediction):
    if not _labelled(prediction):
        return None
    version = prediction.model_version
    if version.needs_review(prediction.probabilities):
        top = max(prediction.probabilities.values())
        return f"top mean probability {top:.2f} < threshold {version.review_threshold:.2f}"
    return None
