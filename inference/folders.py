"""Classify every image of a folder through the serving path (``manage.py classify_folder``).

Imports no TensorFlow itself: it takes a loaded ``EnsembleEngine``. An image that cannot be
read is reported with the reason and does not stop the others.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from inference import preprocessing
from inference.decoding import decode_image
from inference.exceptions import ImageDecodeError


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (sub-folders too), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder at {folder}")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in preprocessing.IMAGE_SUFFIXES
    )


def classify_folder(engine, folder: Path, *, batch_size: int = 32, progress: bool = False) -> dict:
    """``{"images", "out_of_domain", "unreadable", "version", "detector", "results": [...]}``.

    One result per file, in path order: ``file`` (relative to ``folder``), ``label`` (None when
    the image is outside the model's domain: the label is withheld as in the portal), the
    members' ``vote`` behind it, ``votes``, ``agreement``, ``out_of_domain``, ``ood_score`` and
    ``ood_parts`` (the features' and the image statistics' scores over their thresholds);
    or ``error`` for a file that cannot be read.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    files = image_files(folder)
    max_pixels = getattr(settings, "LP_MAX_IMAGE_PIXELS", None)
    results: list[dict] = []
    with tqdm(total=len(files), desc="classify", unit="img", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            decoded, rows = [], []
            for path in chunk:
                row = {"file": path.relative_to(folder).as_posix()}
                try:
                    decoded.append(decode_image(path, max_pixels=max_pixels))
                    rows.append(row)
                except ImageDecodeError as exc:
                    results.append({**row, "error": str(exc)})
            for row, result in zip(rows, engine.classify(decoded) if decoded else [], strict=True):
                results.append({**row, **_result(result)})
            bar.update(len(chunk))
    results.sort(key=lambda r: r["file"])
    classified = [r for r in results if "error" not in r]
    return {
        "version": engine.version.version,
        "detector": engine.ood is not None,
        "images": len(classified),
        "out_of_domain": sum(1 for r in classified if r["out_of_domain"]),
        "unreadable": len(results) - len(classified),
        "results": results,
    }


def _result(result) -> dict:
    return {
        "label": None if result.out_of_domain else result.label,
        "vote": result.label,
        "votes": result.votes,
        "members": result.member_count,
        "agreement": result.agreement,
        "out_of_domain": bool(result.out_of_domain),
        "ood_score": result.ood_score,
        "ood_parts": result.ood_parts,  # each test's score over its threshold
    }
