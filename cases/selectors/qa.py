"""The lab's own measure of the model: model label against the reviewer's verified label.

Over the current verdicts (the latest per image) that verified a class (confirm or reclassify),
optionally for one model version and a date range of the verdicts. Agreement carries a 95% Wilson
interval; kappa and the confusion matrix come from scikit-learn.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import Verdict

ASSESSABLE = (Verdict.Kind.CONFIRM, Verdict.Kind.RECLASSIFY)


@dataclass
class Concordance:
    classes: list[str]
    images: int = 0
    agreed: int = 0
    agreement: float | None = None
    interval: tuple[float, float] | None = None  # 95% Wilson
    kappa: float | None = None
    matrix: list[list[int]] = field(default_factory=list)  # rows: verified label, cols: model
    per_class: list[dict] = field(default_factory=list)
    version_accuracy: float | None = None  # held-out accuracy, in-domain images (``_accuracy``)
    warning: str = ""
    # Reviewed images the model withheld a label for (outside its domain): not in the figures.
    out_of_domain: int = 0


def current_verdicts(
    *, lab, version=None, date_from: date | None = None, date_to: date | None = None
):
    """The latest verdict of each image of ``lab`` that verified a class."""
    newer = Verdict.objects.filter(image=OuterRef("image"), pk__gt=OuterRef("pk"))
    qs = (
        Verdict.objects.filter(image__patient__lab=lab)
        .annotate(superseded=Exists(newer))
        .filter(superseded=False, kind__in=ASSESSABLE, prediction__isnull=False)
        .select_related("prediction", "prediction__model_version")
    )
    if version is not None:
        qs = qs.filter(prediction__model_version=version)
    if date_from:
        qs = qs.filter(created_at__gte=_start_of(date_from))
    if date_to:
        qs = qs.filter(created_at__lt=_start_of(date_to, days=1))
    return qs.order_by("id")


def lab_concordance(*, lab, version=None, date_from=None, date_to=None) -> Concordance:
    verdicts = list(
        current_verdicts(lab=lab, version=version, date_from=date_from, date_to=date_to)
    )
    withheld = [v for v in verdicts if v.prediction.out_of_domain]
    verdicts = [v for v in verdicts if not v.prediction.out_of_domain]
    classes = list(version.class_names) if version is not None else _classes(verdicts)
    result = Concordance(
        classes=classes, version_accuracy=_accuracy(version), out_of_domain=len(withheld)
    )
    if not verdicts:
        return result
    from scipy.stats import binomtest
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    verified = [v.label for v in verdicts]
    model = [v.prediction.label for v in verdicts]
    result.images = len(verdicts)
    result.agreed = sum(a == b for a, b in zip(verified, model, strict=True))
    result.agreement = result.agreed / result.images
    ci = binomtest(result.agreed, result.images).proportion_ci(0.95, method="wilson")
    result.interval = (float(ci.low), float(ci.high))
    if len(set(verified) | set(model)) > 1:
        result.kappa = float(cohen_kappa_score(verified, model, labels=classes))
    result.matrix = confusion_matrix(verified, model, labels=classes).tolist()
    result.per_class = _per_class(result.matrix, classes)
    if result.version_accuracy is not None and result.interval[1] < result.version_accuracy:
        result.warning = (
            f"Agreement with reviewers ({result.agreement:.1%}, 95% CI {result.interval[0]:.1%}"
            f"–{result.interval[1]:.1%}) is below the version's measured accuracy "
            f"({result.version_accuracy:.1%}) by more than its interval. Review the model's use "
            "in this lab: the images may differ from its training data."
        )
    return result


def _per_class(matrix, classes) -> list[dict]:
    rows = []
    for i, name in enumerate(classes):
        verified_n = sum(matrix[i])
        model_n = sum(row[i] for row in matrix)
        rows.append(
            {
                "label": name,
                "verified": verified_n,
                "model": model_n,
                "agreed": matrix[i][i],
                # of the images reviewers verified as this class, the share the model called so
                "sensitivity": matrix[i][i] / verified_n if verified_n else None,
                # of the images the model called this class, the share reviewers confirmed
                "confirmed": matrix[i][i] / model_n if model_n else None,
            }
        )
    return rows


def _classes(verdicts) -> list[str]:
    for v in verdicts:
        return list(v.prediction.model_version.class_names)
    return ["Benign", "Early", "Pre", "Pro"]


def _accuracy(version) -> float | None:
    """The version's held-out accuracy on the images its detector lets through, as concordance
    counts only those (an out-of-domain result has no label to agree with); the accuracy over
    all test images for a version without a detector."""
    if version is None:
        return None
    metrics = version.metrics or {}
    in_domain = metrics.get("in_domain")
    figures = in_domain.get("ensemble") if isinstance(in_domain, dict) else None
    if not isinstance(figures, dict):
        figures = metrics.get("ensemble") or {}
    value = figures.get("accuracy")
    return float(value) if value is not None else None


def _start_of(day: date, days: int = 0) -> datetime:
    from datetime import timedelta

    return timezone.make_aware(datetime.combine(day + timedelta(days=days), time.min))
