"""The small summary files of a released run, committed beside ``docs/model-card.md``.

``render_model_card --from-run RUN_DIR`` copies what the card is rendered from out of the run
folder (which stays on the training machine, under ``var/``) into ``docs/model-card/run/``:
the configuration, the split, the member records, the evaluation metrics, the out-of-domain
detector's and the calibration's figures, the run's timeline and the ensemble's plots. Every
path of the training machine is rewritten relative to the repository (``ml_training/...``,
``var/runs/...``) or to its parent (``../shared/datasets/...``), so the card re-renders from a
clone anywhere and names no machine. Nothing here holds an image, a weight or a patient.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SUMMARY_DIR = Path("docs") / "model-card" / "run"
RUN_FILES = (
    "config.json",
    "split.json",
    "state.json",
    "ood.json",
    "calibration.json",
    "eval/metrics.json",
)
PLOTS = ("confusion_ensemble.png", "roc_ensemble.png", "reliability_ensemble.png")
CARD_FILE = "card.json"  # what the run folder does not say: version number, command, CV source
CV_FILE = "cv.json"
PROBES_FILE = "probes.json"  # classify_folder counts on folders outside the training data
RERUN_FILE = "rerun.json"  # compare_runs of the released run and a rerun of its command
CV_DIR = "cv"  # beside the summary folder: docs/model-card/cv/fold-I/


def relative_paths(text: str, repo: Path) -> str:
    """``text`` with the repository's and its parent's absolute paths made relative."""
    for root in {Path(repo), Path(repo).resolve()}:
        text = text.replace(f"{root}/", "").replace(str(root), ".")
        text = text.replace(f"{root.parent}/", "../")
    return text


def portable_path(path: Path, repo: Path) -> str:
    """``path`` relative to the repository or its parent; only its name if outside both."""
    text = relative_paths(str(Path(path).resolve()), repo)
    return Path(text).name if Path(text).is_absolute() else text


def _copy_json(src: Path, dest: Path, repo: Path) -> None:
    text = relative_paths(src.read_text(), repo)
    json.loads(text)  # still JSON after the rewrite
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)


def export_run(
    run_dir: Path,
    dest: Path,
    *,
    repo: Path,
    version: int | None = None,
    command: str | None = None,
    verification: dict | None = None,
) -> Path:
    """Copy the card's sources from ``run_dir`` into ``dest`` (replacing what was there)."""
    run_dir, dest = Path(run_dir), Path(dest)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not an evaluated run folder: no {', '.join(missing)}"
        )
    if dest.exists():
        shutil.rmtree(dest)
    for name in RUN_FILES:
        _copy_json(run_dir / name, dest / Path(name).name, repo)
    for member in sorted((run_dir / "members").glob("*.json")):
        _copy_json(member, dest / "members" / member.name, repo)
    for plot in PLOTS:
        if (run_dir / "eval" / plot).is_file():
            shutil.copy(run_dir / "eval" / plot, dest.parent / plot)
    config = json.loads((dest / "config.json").read_text())
    card = {
        "run": portable_path(run_dir, repo),
        "version": version,
        "command": command or default_command(config),
        "verification": verification,
    }
    (dest / CARD_FILE).write_text(relative_paths(json.dumps(card, indent=1), repo))
    return dest


def write_cv(dest: Path, cv_summary: dict, *, repo: Path) -> Path:
    """Add a cross-validation summary (``crossval.summarise``) to a summary folder."""
    path = Path(dest) / CV_FILE
    path.write_text(relative_paths(json.dumps(cv_summary, indent=1), repo))
    return path


def add_cv_folds(summary: Path, fold_runs: list[Path], *, repo: Path) -> dict:
    """Commit cross-validation folds beside the card and summarise every committed fold.

    Each fold run's ``config.json`` and ``eval/metrics.json`` are copied to
    ``docs/model-card/cv/fold-I/`` (replacing an earlier copy of that fold), so folds run on
    different days add up; then all committed folds are summarised (``crossval.summarise``
    refuses folds of different data, seed, profile or fold count) into the summary's
    ``cv.json``. With no runs, the committed folds are only summarised again.
    """
    from ml_training import crossval

    cv_root = Path(summary).parent / CV_DIR
    for run in fold_runs:
        fold = crossval.load_fold(run)["config"]["cv"]["fold"]
        dest = cv_root / f"fold-{fold}"
        if dest.exists():
            shutil.rmtree(dest)
        _copy_json(Path(run) / "config.json", dest / "config.json", repo)
        _copy_json(Path(run) / "eval" / "metrics.json", dest / "eval" / "metrics.json", repo)
    folds = sorted(p for p in cv_root.glob("fold-*") if p.is_dir()) if cv_root.is_dir() else []
    cv_summary = crossval.summarise(folds)
    write_cv(summary, cv_summary, repo=repo)
    return cv_summary


def add_probe(summary: Path, folder: str, report: dict, *, repo: Path) -> list[dict]:
    """Record what ``classify_folder FOLDER --json`` printed (``report``) for the card: counts
    and score quantiles only, no file names. Replaces an earlier record of the same folder."""
    import statistics

    from inference.ood import PARTS

    folder = relative_paths(str(Path(folder).resolve()), repo)
    scores = [r["ood_score"] for r in report["results"] if r.get("ood_score") is not None]
    record = {
        "folder": folder,
        "version": report["version"],
        "images": report["images"],
        "out_of_domain": report["out_of_domain"],
        "unreadable": report["unreadable"],
        "detector": report["detector"],
        "min_score": min(scores) if scores else None,
        "median_score": statistics.median(scores) if scores else None,
        # each test on its own (ood_parts: its score over its threshold), to show which of
        # the two carries the flagging
        "flagged_by": {
            part: sum(1 for r in report["results"] if (r.get("ood_parts") or {}).get(part, 0) > 1)
            for part in PARTS
        },
        "command": (
            f"python manage.py classify_folder {folder} --version {report['version']} --json"
        ),
    }
    path = Path(summary) / PROBES_FILE
    probes = json.loads(path.read_text()) if path.is_file() else []
    probes = [p for p in probes if p["folder"] != folder] + [record]
    path.write_text(json.dumps(probes, indent=1))
    return probes


def add_rerun(summary: Path, comparison: dict, *, repo: Path) -> dict:
    """Record what ``compare_runs RUN RERUN --json`` printed (``comparison``): whether a second
    run of the same command agreed with the released one, and how long each took."""
    runs = [relative_paths(str(Path(r).resolve()), repo) for r in comparison["runs"]]
    record = {
        "runs": runs,
        "agree": comparison["agree"],
        "tolerance": comparison["tolerance"],
        "largest_difference": comparison["largest_difference"],
        "same_split": comparison["same_split"],
        "same_data": comparison["same_data"],
        "same_confusion_matrices": comparison["same_confusion_matrices"],
        "same_out_of_domain": comparison["same_out_of_domain"],
        "minutes": [None if s is None else round(s / 60, 1) for s in comparison["seconds"]],
        "command": f"python manage.py compare_runs {runs[0]} {runs[1]}",
    }
    (Path(summary) / RERUN_FILE).write_text(json.dumps(record, indent=1))
    return record


def default_command(config: dict) -> str:
    cv = config.get("cv")
    return (
        f"python manage.py retrain --data-dir {config['data_dir']} "
        f"--profile {config['profile']['name']} --seed {config['seed']}"
        + (f" --weights-dir {config['weights_dir']}" if config.get("weights_dir") else "")
        + (f" --cv-folds {cv['folds']} --cv-fold {cv['fold']}" if cv else " --activate")
    )


def load_summary(src: Path) -> dict:
    """Everything the card is rendered from, read from a summary folder."""
    src = Path(src)
    if not (src / CARD_FILE).is_file():
        raise FileNotFoundError(
            f"{src} holds no model card summary; make one with render_model_card --from-run RUN_DIR"
        )

    def read(name):
        path = src / name
        return json.loads(path.read_text()) if path.is_file() else None

    return {
        "card": read(CARD_FILE),
        "config": read("config.json"),
        "split": read("split.json"),
        "state": read("state.json"),
        "ood": read("ood.json"),
        "calibration": read("calibration.json"),
        "metrics": read("metrics.json"),
        "cv": read(CV_FILE),
        "probes": read(PROBES_FILE) or [],
        "rerun": read(RERUN_FILE),
        "members": {p.stem: json.loads(p.read_text()) for p in (src / "members").glob("*.json")},
    }
