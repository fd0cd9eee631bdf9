"""Render ``docs/model-card.md`` from a run folder, so every number in it comes from a command.

``python manage.py render_model_card var/runs/<run> [--version N] [--verification FILE]``
reads ``config.json``, ``state.json``, ``split.json``, ``members/*.json`` and
``eval/metrics.json`` of the run, copies the ensemble's plots (small PNGs) to
``docs/model-card/`` and writes the card. ``--verification`` adds the metrics JSON printed by
``evaluate_model --json`` on the registered version, to show the two agree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ml_training.train import TIME_BUDGET_STOP

DATASET_CITATION = (
    "Aria M., Ghaderzadeh M., Bashash D., Abolghasemi H., Asadi F., Hosseini A. "
    '"Acute Lymphoblastic Leukemia (ALL) image dataset". Bone-marrow laboratory of Taleqani '
    "Hospital, Tehran. Mendeley Data / Kaggle. 3,256 peripheral blood smear images of 89 "
    "patients, Zeiss camera at 100x, 224x224 JPG; cell types confirmed by flow cytometry."
)

CARD_PLOTS = (
    "confusion_ensemble.png",
    "roc_ensemble.png",
    "reliability_ensemble.png",
)


def _f(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(m, key="macro_f1"):
    ci = m.get("ci95", {}).get(key)
    return f"{_f(ci[0])}–{_f(ci[1])}" if ci else "n/a"


def _minutes(seconds):
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def render(
    run_dir: Path,
    out: Path,
    *,
    version: int | None = None,
    verification: dict | None = None,
    command: str | None = None,
) -> Path:
    run_dir = Path(run_dir)
    out = Path(out)
    config = json.loads((run_dir / "config.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())["counts"]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())["summary"]
    profile = config["profile"]
    members_info = {
        m["name"]: json.loads((run_dir / "members" / f"{m['name']}.json").read_text())
        for m in profile["members"]
    }
    plots_dir = out.parent / "model-card"
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name in CARD_PLOTS:
        src = run_dir / "eval" / name
        if src.is_file():
            shutil.copy(src, plots_dir / name)
    ens = metrics["ensemble"]
    extra = metrics.get("extra", {})
    if "training" not in extra and version is not None:
        # Runs made before the training summary was written into eval/metrics.json: the
        # registered version's metrics carry it.
        from inference.models import ModelVersion

        row = ModelVersion.objects.filter(version=version).first()
        if row is not None:
            extra["training"] = row.metrics.get("extra", {}).get("training", {})
    training = extra.get("training", {})
    machine = training.get("machine", {})
    train_sum = sum(i.get("train_seconds", 0) for i in members_info.values())
    timeline = [h for h in state.get("history", [])]
    started = config.get("created_at")
    finished = next((h["at"] for h in reversed(timeline) if h["status"] == "registered"), None)
    command = command or (
        f"python manage.py retrain --data-dir {config['data_dir']} --profile {profile['name']} "
        f"--seed {config['seed']} --activate"
    )
    L = []
    add = L.append
    add("# Model card: voted five-CNN ensemble for ALL subtypes in peripheral blood smears")
    add("")
    add("> **Research use only.** Not a medical device; not validated for diagnosis. Every number")
    add(
        "> below is rendered by `python manage.py render_model_card "
        f"{_rel(run_dir)}` from the run folder of the training run (`eval/metrics.json`, "
        "`members/*.json`, `config.json`)."
    )
    add("")
    add("## Summary")
    add("")
    add(
        f"- Model version: {('v' + str(version)) if version else 'see the registry'}, "
        f"profile `{profile['name']}`, seed {config['seed']}, code `{config['code_version']}`."
    )
    add(
        f"- Voted ensemble on {metrics['test_set']['images']} held-out **Original** test images: "
        f"accuracy **{_f(ens['accuracy'])}**, macro-F1 **{_f(ens['macro_f1'])}** "
        f"(95% bootstrap CI {_ci(ens)}), Cohen's kappa {_f(ens['cohen_kappa'])}, "
        f"macro one-vs-rest ROC AUC {_f(ens['roc_auc_macro'])}, ECE {_f(ens['ece'])}."
    )
    add(
        f"- Training: {_minutes(train_sum)} for the five members; whole run (manifest → "
        f"registration) {started} → {finished or 'n/a'} "
        f"({_minutes(state.get('total_seconds_this_session'))}) on "
        f"{machine.get('cpu_count')} CPU cores "
        f"({machine.get('processor')}), no GPU, TensorFlow {machine.get('tensorflow')}, Keras "
        f"{machine.get('keras')}. Initial weights: {training.get('weights', 'n/a')}."
    )
    target = 0.99
    met = ens["macro_f1"] >= target
    upper = ens.get("ci95", {}).get("macro_f1", [0, 0])[1]
    add(
        f"- Project target: ensemble macro-F1 ≥ {target} on Original test images and the whole "
        f"retrain within 60 minutes. This run: macro-F1 {_f(ens['macro_f1'])}, target "
        + ("**met**" if met else "**not met**")
        + f" (the 95% interval {'includes' if upper >= target else 'excludes'} {target})."
    )
    add("")
    add("Exact command:")
    add("")
    add("```bash")
    add(command)
    add("```")
    add("")
    add("## Data")
    add("")
    add(
        f"Source: {DATASET_CITATION} The project holds 80% of it (2,604 images per tree) in "
        "`/work/shared/datasets/all-taleqani`; the other 20% is an external test set this "
        "repository never sees. The data set is never copied into the repository."
    )
    add("")
    add(
        f"Trained on `{config['data_dir']}` (Original: raw smear fields, as the portal receives "
        f"them). Data fingerprint `{config['data_fingerprint']}`."
    )
    add("")
    add(
        "Deduplication before splitting: exact duplicates by sha256 (one copy kept), "
        "near-duplicates by a 64-bit DCT perceptual hash (pairs within "
        f"{manifest['near_duplicate_max_distance_bits']} bits are linked; their connected "
        "components are groups that never straddle a split). Result: "
        f"{manifest['exact_duplicates_dropped']} exact duplicates dropped, "
        f"{manifest['label_conflicts_dropped']} images dropped for conflicting labels, "
        f"{manifest['near_duplicate_groups']} near-duplicate groups "
        f"({manifest['images_in_near_duplicate_groups']} images); {manifest['images']} images "
        "remain."
    )
    add("")
    add(
        f"Split (StratifiedGroupKFold folds, seed {config['seed']}): stratified by class, "
        "near-duplicate groups kept on one side."
    )
    add("")
    add("| Split | " + " | ".join(manifest["per_class"]) + " | Total |")
    add("|---" * (len(manifest["per_class"]) + 2) + "|")
    for part in ("train", "val", "test"):
        row = split[part]
        add(
            f"| {part} | "
            + " | ".join(str(row[c]) for c in manifest["per_class"])
            + f" | {sum(row.values())} |"
        )
    add("")
    add("## Preprocessing and training")
    add("")
    pre = profile["preprocessing"]
    contrast = pre["contrast"]["method"]
    tta = pre.get("tta", "none")
    add(
        f"Serving and training share `inference.preprocessing` with the version's config: "
        f"`{json.dumps(pre)}` — decode, squash-resize to {pre['input_size']}×{pre['input_size']} "
        f"({pre['interpolation']}), "
        + ("no contrast step, " if contrast == "none" else f"contrast `{contrast}`, ")
        + (
            "no segmentation (the model sees the Original field). "
            if not pre["segmentation"]
            else "HSV / Otsu segmentation (`inference.segmentation`). "
        )
        + "Members trained at a smaller size get the fused serving model's "
        "`Resizing` from that input, in training too. Each member scales its input itself "
        "(`InputScaling`)."
        + (
            " Members with a training window (column Window below) train on random windows of "
            "that size cut from their input, and are served the whole input: they see the cells "
            "at the serving scale for the training cost of the smaller window."
            if any(m.get("train_crop") for m in profile["members"])
            else ""
        )
        + (
            ""
            if tta == "none"
            else f" Test-time views (`{tta}`, serving and evaluation only): each member "
            "classifies the image and its vertical, horizontal and double flip, and its "
            "probabilities are averaged over the four views before the vote."
            if tta == "flips"
            else f" Test-time views: `{tta}`."
        )
    )
    add("")
    aug = profile.get("augment", {})
    add(
        "Augmentation (training split only, Keras random layers in tf.data, seeded): "
        + ", ".join(f"{k} {v}" for k, v in aug.items() if v)
        + ". Classes balanced by "
        "oversampling: every batch holds the four classes in equal numbers."
    )
    add("")
    t = profile["train"]
    add(
        f"Optimiser {t['optimizer']} (lr per member below, weight decay {t['weight_decay']}), "
        f"{t['warmup_epochs']} epoch warm-up then cosine decay, label smoothing "
        f"{t['label_smoothing']}, dropout {t['dropout']}, BatchNorm momentum {t['bn_momentum']} "
        f"with a {t.get('bn_refresh_batches', 0)}-batch re-estimation of the BatchNorm "
        "statistics (the plain average over un-augmented training batches) before each "
        "validation. Validation in inference mode after every epoch; the "
        "best epoch by validation macro-F1 is kept; early stopping and a wall-clock cap per "
        "member. Training precision as listed (bfloat16 mixed precision where it is faster on "
        "this CPU); the stored members are float32."
    )
    add("")
    if t.get("prior_correction"):
        corrections = {
            name: i["prior_correction"]
            for name, i in members_info.items()
            if i.get("prior_correction")
        }
        kept = [n for n, c in corrections.items() if c.get("kept", True)]
        dropped = [n for n, c in corrections.items() if not c.get("kept", True)]
        add(
            "After training, each member's softmax bias gets log(class frequency of the training "
            "split) added (post-hoc logit adjustment): balanced batches train a member for equal "
            "class priors, and the data's own priors are restored for prediction. The correction "
            "is kept only when it does not lower the member's validation macro-F1: kept for "
            f"{', '.join(kept) or 'none'}"
            + (f"; not kept for {', '.join(dropped)}" if dropped else "")
            + ". The validation macro-F1 below is the stored member's, in float32."
        )
        add("")
    if t.get("calibrate"):
        add(
            "After training (and selecting the best epoch), each member gets a temperature T and "
            "a class bias b fitted on the validation split by minimum negative log-likelihood "
            "(`ml_training.calibration`), folded into its softmax layer (logits / T + b), so the "
            "stored member carries it. It is kept only when it does not lower the member's "
            "validation macro-F1. Fitted on validation images, so the validation figures below "
            "are optimistic; the test split never took part."
        )
        add("")
        add(
            "| Member | T | b (" + ", ".join(manifest["per_class"]) + ") | Val NLL | "
            "Val macro-F1 | Kept |"
        )
        add("|---|---|---|---|---|---|")
        for m in profile["members"]:
            c = members_info[m["name"]].get("calibration")
            if not c:
                continue
            add(
                f"| {m['name']} | {c['temperature']:.3f} | "
                + ", ".join(f"{v:+.2f}" for v in c["bias"])
                + f" | {c['val_nll_before']:.4f} → {c['val_nll_after']:.4f} | "
                f"{_f(c['val_before']['macro_f1'])} → {_f(c['val_after']['macro_f1'])} | "
                f"{'yes' if c['kept'] else 'no'} |"
            )
        add("")
    add(
        "| Member | Input px | Window px | Precision | LR | Epochs run / planned | Best epoch | "
        "Val macro-F1 | Train time | Stopped |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for m in profile["members"]:
        i = members_info[m["name"]]
        add(
            f"| {m['name']} | {m['input_size']} | {i.get('train_crop') or 'whole'} | "
            f"{i.get('precision', 'float32')} | "
            f"{m['learning_rate']} | {i.get('epochs_run')} / {i.get('planned_epochs')} | "
            f"{i.get('best_epoch')} | {_f(i.get('val', {}).get('macro_f1'))} | "
            f"{_minutes(i.get('train_seconds'))} | {i.get('stopped')} |"
        )
    add("")
    add("## Results on the held-out test split (Original images, serving path)")
    add("")
    add(
        "Evaluated through `inference.engine` (the fused model and `EnsembleEngine.classify`, "
        "the Celery worker's code) on the test split's Original images. 95% intervals: "
        f"percentile bootstrap over images ({profile['eval']['bootstrap']} resamples)."
    )
    add("")
    add(
        "| Model | Accuracy (95% CI) | Macro-F1 (95% CI) | Weighted F1 | Kappa | ROC AUC | ECE | "
        "Collapsed |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for name, m in [("**Voted ensemble**", ens), *metrics["members"].items()]:
        add(
            f"| {name} | {_f(m['accuracy'])} ({_ci(m, 'accuracy')}) | {_f(m['macro_f1'])} "
            f"({_ci(m)}) | {_f(m['weighted_f1'])} | {_f(m['cohen_kappa'])} | "
            f"{_f(m['roc_auc_macro'])} | {_f(m['ece'])} | {'YES' if m['collapsed'] else 'no'} |"
        )
    add("")
    add("Per class (voted ensemble):")
    add("")
    add("| Class | Precision | Recall | F1 | Support | ROC AUC |")
    add("|---|---|---|---|---|---|")
    for c, pc in ens["per_class"].items():
        add(
            f"| {c} | {_f(pc['precision'])} | {_f(pc['recall'])} | {_f(pc['f1'])} | "
            f"{pc['support']} | {_f(pc['roc_auc'])} |"
        )
    add("")
    add("Per-member per-class F1:")
    add("")
    add("| Member | " + " | ".join(ens["per_class"]) + " |")
    add("|---" * (len(ens["per_class"]) + 1) + "|")
    for name, m in metrics["members"].items():
        add(f"| {name} | " + " | ".join(_f(pc["f1"]) for pc in m["per_class"].values()) + " |")
    add("")
    ag = ens.get("agreement", {})
    if ag:
        add(
            f"Member agreement: unanimous on {ag['unanimous']:.1%} of test images, majority "
            f"(not unanimous) {ag['majority']:.1%}, split {ag['split']:.1%}. Ensemble accuracy "
            f"when unanimous {_f(ag['accuracy_when_unanimous'])}, otherwise "
            f"{_f(ag['accuracy_when_not_unanimous'])}."
        )
        add("")
    add("Confusion matrix (voted ensemble; rows true, columns predicted):")
    add("")
    names = list(ens["per_class"])
    add("| | " + " | ".join(names) + " |")
    add("|---" * (len(names) + 1) + "|")
    for n, row in zip(names, ens["confusion_matrix"], strict=True):
        add(f"| {n} | " + " | ".join(str(v) for v in row) + " |")
    add("")
    errors = error_summary(names, ens["confusion_matrix"])
    if errors:
        add(errors)
        add("")
    for name in CARD_PLOTS:
        if (plots_dir / name).is_file():
            add(f"![{name[:-4]}](model-card/{name})")
    add("")
    add(
        f"Calibration: expected calibration error (15 bins, top-class confidence of the mean "
        f"member probabilities) {_f(ens['ece'])}; the reliability diagram is above. The "
        "ensemble's label is the majority vote; its probability is the members' mean, which is "
        "not a calibrated clinical probability."
    )
    add("")
    seg = extra.get("segmented")
    if seg:
        se = seg["ensemble"]
        add("### Beside it: the same test images from the dataset's Segmented tree")
        add("")
        add(
            f"Not what the portal receives and not what the members were trained on; reported "
            f"for comparison only. Voted ensemble: accuracy {_f(se['accuracy'])}, macro-F1 "
            f"{_f(se['macro_f1'])} ({_ci(se)})."
        )
        add("")
    else:
        add("### Beside it: the dataset's Segmented tree")
        add("")
        add(
            "Not scored in this run (the profile's `eval.segmented` is off). "
            f"`python manage.py evaluate_model --run-dir {_rel(run_dir)} --split test "
            "--segmented --version N` scores the test split's Segmented twins with a registered "
            "version."
        )
        add("")
    iou = extra.get("segmentation_iou")
    if iou and iou.get("available"):
        add("### Segmentation check")
        add("")
        add(
            f"`inference.segmentation` (HSV / Otsu, config `{json.dumps(iou['config'])}`) "
            f"against the dataset's own Segmented images (mask = {iou['reference_mask']}) over "
            f"{iou['images']} images: mean mask IoU **{_f(iou['mean_iou'], 3)}** (median "
            f"{_f(iou['median_iou'], 3)}; per class "
            + ", ".join(f"{c} {_f(v, 3)}" for c, v in iou["per_class_mean_iou"].items())
            + f"). {iou['skipped_empty_reference']} reference images that are almost entirely "
            "black (the authors' threshold lost the cell) were skipped. The deployed model does "
            "not segment."
        )
        add("")
    if verification:
        ve = verification["ensemble"]
        add("### Re-check through the registry")
        add("")
        add(
            f"`python manage.py evaluate_model --run-dir {_rel(run_dir)} --split test "
            f"--version {version} --json`"
            f" on the registered version (loaded from media storage with sha256 checks): "
            f"accuracy {_f(ve['accuracy'])}, macro-F1 {_f(ve['macro_f1'])} on "
            f"{verification['test_set']['images']} images."
        )
        add("")
    add("## Limits")
    add("")
    add(
        "- **No patient-level split is possible**: file names carry no patient identifiers, so "
        "images of one patient can sit in both training and test; the test score can be "
        "optimistic for new patients."
    )
    add(
        "- **One hospital, one camera, one lab** (Taleqani Hospital, Tehran): no external "
        "validation on other sites, stains, scanners or magnifications."
    )
    add(
        "- **Staining and focus batch effects**: the classes differ strongly in stain colour "
        "and focus; a model can score high by recognising the lab batch rather than the cell. "
        "Colour jitter in training only partly guards against this."
    )
    add(
        "- The test split is small; confidence intervals are wide at the class level, and "
        "near-duplicates are only detected up to the perceptual-hash threshold."
    )
    add(f"- {initial_weights_note(config, profile)}")
    capped = wall_clock_note(members_info)
    if capped:
        add(f"- {capped}")
    add("- **Research use only.** Not for diagnosis or treatment decisions.")
    add("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L))
    return out


def _rel(path: Path) -> str:
    try:
        from django.conf import settings

        return str(Path(path).resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except (ValueError, ImportError):
        return str(path)


def initial_weights_note(config: dict, profile: dict) -> str:
    """How the members started (ImageNet or from scratch) and which ones run below the input."""
    text = (
        "Members were fine-tuned from ImageNet weights read from `--weights-dir`"
        if config.get("weights_dir")
        else "Members were trained from scratch (no ImageNet weights)"
    )
    size = int(profile["preprocessing"]["input_size"])
    reduced = [m for m in profile["members"] if int(m["input_size"]) < size]
    if reduced:
        text += (
            "; "
            + ", ".join(f"{m['name']} ({m['input_size']} px)" for m in reduced)
            + f" see the {size} px field downscaled, to fit the profile's time budget"
        )
    return text + "."


def wall_clock_note(members_info: dict) -> str | None:
    """The reproducibility caveat of members stopped by their wall-clock cap; None if none were.

    Such a member's epoch count depends on the machine's speed and load, so a rerun with the
    same seed and data gives the same split but not the same weights or figures.
    """
    capped = [
        name
        for name, info in members_info.items()
        if str(info.get("stopped", "")).startswith(TIME_BUDGET_STOP)
    ]
    if not capped:
        return None
    return (
        f"**Reruns differ**: {', '.join(capped)} stopped on their wall-clock cap, so their "
        "epoch counts depend on the machine's speed and load. A rerun with the same seed and "
        "data reproduces the split, not the weights: expect the test figures to move within "
        "their confidence intervals. `--cv-folds` with `cv_report` measures the spread."
    )


def error_summary(names: list[str], confusion: list[list[int]]) -> str:
    """Where the voted ensemble errs, most frequent confusion first, and how many malignant
    (non-Benign) images it called Benign: the error that would miss a leukaemia."""
    pairs = sorted(
        (
            (confusion[i][j], names[i], names[j])
            for i in range(len(names))
            for j in range(len(names))
            if i != j and confusion[i][j]
        ),
        reverse=True,
    )
    if not pairs:
        return "No test image was misclassified."
    total = sum(count for count, _, _ in pairs)
    parts = [f"{count} {true} as {pred}" for count, true, pred in pairs]
    text = f"Errors: {total} test images ({', '.join(parts)})."
    if "Benign" in names:
        b = names.index("Benign")
        malignant = [i for i in range(len(names)) if i != b]
        missed = sum(confusion[i][b] for i in malignant)
        support = sum(sum(confusion[i]) for i in malignant)
        text += (
            f" Malignant images called Benign (a missed leukaemia): **{missed} of {support}**"
            f"; Benign images called malignant: {sum(confusion[b]) - confusion[b][b]} of "
            f"{sum(confusion[b])}."
        )
    return text
