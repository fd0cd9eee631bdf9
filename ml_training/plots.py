"""Evaluation plots (PNG): confusion matrix, one-vs-rest ROC and reliability diagram, for the
voted ensemble and every member, from ``evaluate.evaluate_results``. matplotlib is imported
lazily with the Agg backend (no display on a worker or a CI machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml_training.evaluate import ECE_BINS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm, class_names, title, path: Path) -> None:
    plt = _plt()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > thresh else "black",
            )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_roc(y_true, probs, class_names, title, path: Path) -> None:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=100)
    for c, name in enumerate(class_names):
        positives = np.asarray(y_true) == c
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, np.asarray(probs)[:, c])
        ax.plot(fpr, tpr, label=name, lw=1.2)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_reliability(table, ece, title, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=100)
    if table:
        centers = [(row["bin"][0] + row["bin"][1]) / 2 for row in table]
        ax.bar(
            centers,
            [row["accuracy"] for row in table],
            width=1 / ECE_BINS,
            edgecolor="k",
            alpha=0.7,
            label="accuracy",
        )
        ax.plot(
            [row["confidence"] for row in table],
            [row["accuracy"] for row in table],
            "o",
            ms=3,
            color="C1",
            label="mean confidence",
        )
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} (ECE {ece:.3f})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(evaluation: dict, class_names, out_dir: Path, *, prefix: str = "") -> dict:
    """PNG plots for the ensemble and every member; returns {artifact key: file name}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = evaluation["_arrays"]
    y_true = arrays["y_true"]
    artifacts = {}
    models = [("ensemble", "Voted ensemble", evaluation["ensemble"], arrays["ens_probs"])]
    models += [
        (name, name, evaluation["members"][name], arrays["member_probs"][j])
        for j, name in enumerate(evaluation["members"])
    ]
    for key, title, metrics, probs in models:
        slug = key.lower()
        files = {
            "confusion_matrix": f"{prefix}confusion_{slug}.png",
            "roc": f"{prefix}roc_{slug}.png",
            "reliability": f"{prefix}reliability_{slug}.png",
        }
        plot_confusion(
            metrics["confusion_matrix"],
            class_names,
            f"{title}: confusion (F1 {metrics['macro_f1']:.3f})",
            out_dir / files["confusion_matrix"],
        )
        plot_roc(
            y_true,
            probs,
            class_names,
            f"{title}: ROC (AUC {metrics['roc_auc_macro']:.3f})",
            out_dir / files["roc"],
        )
        plot_reliability(
            metrics["reliability"], metrics["ece"], title, out_dir / files["reliability"]
        )
        if key == "ensemble":
            artifacts.update(files)
        for kind, name in files.items():
            artifacts[f"{kind}_{slug}"] = name
    return artifacts
