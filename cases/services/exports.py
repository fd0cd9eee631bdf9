"""Reviewed images leave ``cases`` as files: a class-folder tree that ``ml_training`` reads.

``DIR/<verified label>/<sha256>.png`` for every image of a lab whose current verdict verified a
class (confirmed or reclassified), with ``DIR/reviewed-manifest.csv`` (one row per image: file,
sha256, verified label, model label and version, agreement, verdict, reviewer role, when). No
patient identifier, accession number or original file name leaves: the file is named by its
content. The same pixels uploaded for two patients are one file: written once when their
verdicts agree, left out (and counted as a conflict) when they do not, so that no image sits in
two class folders. ``retrain --data-dir DIR`` reads the tree as it is (``ml_training.data``
takes the class folders and ignores the manifest).
"""

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import default_storage

from ..models import AuditEvent, Specimen
from ..selectors.qa import current_verdicts
from .audit import audit_event_create

MANIFEST = "reviewed-manifest.csv"
COLUMNS = [
    "file",
    "sha256",
    "verified_label",
    "model_label",
    "model_version",
    "agreement",
    "verdict",
    "reviewer_role",
    "verified_at",
]


class ExportRefused(Exception):
    pass


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    images: int
    per_class: dict[str, int]
    # sha256 of the pixels whose copies were verified as different classes: left out
    conflicts: tuple[str, ...] = ()


def reviewed_export(
    *, lab, to: Path, signed_only: bool = False, replace: bool = False, by=None
) -> ExportReport:
    """Write the lab's verified images under ``to``. Refuses a folder that holds anything but a
    previous export unless ``replace`` (which removes that export first), so an image whose
    verdict changed never sits in two class folders."""
    to = Path(to)
    _prepare(to, replace=replace)
    rows, per_class = [], {}
    by_content: dict[str, list] = {}
    for verdict in _current_verified(lab, signed_only=signed_only):
        by_content.setdefault(verdict.image.sha256, []).append(verdict)
    conflicts = tuple(
        sha for sha, verdicts in by_content.items() if len({v.label for v in verdicts}) > 1
    )
    for sha, verdicts in by_content.items():
        if sha in conflicts:
            continue
        verdict = verdicts[0]  # the first image of these pixels; the others agree
        image, prediction = verdict.image, verdict.prediction
        name = f"{verdict.label}/{image.sha256}.png"
        target = to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(image.file.name, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        per_class[verdict.label] = per_class.get(verdict.label, 0) + 1
        rows.append(
            [
                name,
                image.sha256,
                verdict.label,
                prediction.label,
                prediction.model_version.version,
                prediction.agreement,
                verdict.kind,
                verdict.reviewer_role,
                verdict.created_at.isoformat(),
            ]
        )
    with open(to / MANIFEST, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    audit_event_create(
        event_type=AuditEvent.EventType.REVIEWED_EXPORTED,
        acting_user=by,
        lab=lab,
        new={
            "folder": str(to),
            "images": len(rows),
            "per_class": per_class,
            "signed_only": signed_only,
            "conflicts": list(conflicts),
        },
    )
    return ExportReport(folder=to, images=len(rows), per_class=per_class, conflicts=conflicts)


def _current_verified(lab, *, signed_only: bool):
    qs = current_verdicts(lab=lab).select_related("image").order_by("image_id")
    if signed_only:
        qs = qs.filter(image__specimen__status__in=Specimen.SIGNED)
    return qs.iterator(chunk_size=500)


def _prepare(to: Path, *, replace: bool) -> None:
    if not to.exists():
        to.mkdir(parents=True)
        return
    if not to.is_dir():
        raise ExportRefused(f"{to} exists and is not a folder.")
    contents = list(to.iterdir())
    if not contents:
        return
    if not (to / MANIFEST).exists():
        raise ExportRefused(
            f"{to} is not empty and holds no earlier export ({MANIFEST}); choose an empty folder."
        )
    if not replace:
        raise ExportRefused(
            f"{to} holds an earlier export; pass --replace to write a fresh one in its place."
        )
    for child in contents:
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
