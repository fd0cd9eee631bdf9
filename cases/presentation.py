"""A prediction made readable: class names, bars, the member table, agreement in plain words."""

from dataclasses import dataclass

from .models import Prediction

# What each class label means, shown next to the short label on result pages.
CLASS_NAMES = {
    "Benign": "Hematogones (benign)",
    "Early": "Early pre-B ALL",
    "Pre": "Pre-B ALL",
    "Pro": "Pro-B ALL",
}
CLASS_NOTES = {  # next to the short label where space is tight
    "Benign": "hematogones",
    "Early": "early pre-B ALL",
    "Pre": "pre-B ALL",
    "Pro": "pro-B ALL",
}
CLASS_DESCRIPTIONS = {
    "Benign": "Hematogones: benign B-lymphocyte precursors, not leukemia.",
    "Early": "Early precursor B-cell acute lymphoblastic leukemia (early pre-B ALL).",
    "Pre": "Precursor B-cell acute lymphoblastic leukemia (pre-B ALL).",
    "Pro": "Pro-B-cell acute lymphoblastic leukemia (pro-B ALL).",
}


@dataclass
class ClassBar:
    name: str
    note: str  # "pre-B ALL"
    percent: str  # "42.1", formatted here so CSS widths never see a localised decimal
    votes: int
    is_label: bool


@dataclass
class MemberRow:
    name: str
    label: str
    percents: list[tuple[str, bool]]  # per class: ("42.1", is this member's vote)
    agrees: bool


@dataclass
class PredictionView:
    """A prediction made readable: bars, member table, agreement in plain language."""

    prediction: Prediction
    classes: list[str]
    bars: list[ClassBar]
    members: list[MemberRow]

    @classmethod
    def of(cls, prediction: Prediction) -> "PredictionView":
        members = list(prediction.member_votes.all())
        classes = list(prediction.model_version.class_names or prediction.probabilities)
        for name in prediction.probabilities:
            if name not in classes:
                classes.append(name)
        votes = {name: sum(m.label == name for m in members) for name in classes}
        bars = [
            ClassBar(
                name=name,
                note=CLASS_NOTES.get(name, ""),
                percent=_percent(prediction.probabilities.get(name)),
                votes=votes[name],
                is_label=name == prediction.label,
            )
            for name in classes
        ]
        rows = [
            MemberRow(
                name=m.member_name,
                label=m.label,
                percents=[
                    (_percent(m.probabilities.get(name)), name == m.label) for name in classes
                ],
                agrees=m.label == prediction.label,
            )
            for m in members
        ]
        return cls(prediction=prediction, classes=classes, bars=bars, members=rows)

    @property
    def label_name(self) -> str:
        return CLASS_NAMES.get(self.prediction.label, self.prediction.label)

    @property
    def label_description(self) -> str:
        return CLASS_DESCRIPTIONS.get(self.prediction.label, "")

    @property
    def is_uncertain(self) -> bool:
        return self.prediction.agreement == Prediction.Agreement.SPLIT

    @property
    def agreement_headline(self) -> str:
        p = self.prediction
        if p.agreement == Prediction.Agreement.UNANIMOUS:
            return f"All {p.member_count} models agree"
        return f"{p.votes} of {p.member_count} models agree"

    @property
    def agreement_explanation(self) -> str:
        p = self.prediction
        others = p.member_count - p.votes
        if p.agreement == Prediction.Agreement.UNANIMOUS:
            return (
                f"Every one of the {p.member_count} networks in the ensemble voted {p.label}. "
                "Agreement between models is not proof of correctness: the models can share "
                "the same blind spots."
            )
        if p.agreement == Prediction.Agreement.MAJORITY:
            return (
                f"{p.votes} of the {p.member_count} networks voted {p.label}; "
                f"{others} voted for {'another class' if others == 1 else 'other classes'}. "
                "A majority decided the label; look at the dissenting votes below."
            )
        return (
            f"No class won more than half of the votes: only {p.votes} of {p.member_count} "
            f"networks voted {p.label}, and ties were broken by the mean probability. "
            "The models disagree, so this result is uncertain: review the smear manually."
        )


def _percent(value) -> str:
    try:
        return f"{float(value) * 100:.1f}"
    except (TypeError, ValueError):
        return "0.0"


def vote_summary(prediction: Prediction | None) -> str:
    """``"Pre · 4/5 majority"``, or an empty string without a prediction."""
    if prediction is None:
        return ""
    if prediction.out_of_domain:
        return "Outside the model's domain: not classified"
    return (
        f"{prediction.label} · {prediction.votes}/{prediction.member_count} "
        f"{prediction.get_agreement_display().lower()}"
    )
