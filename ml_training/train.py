"""Train the ensemble members of a run: one run folder, resumable member by member.

Run folder layout (default ``var/runs/<UTC timestamp>-<profile>``)::

    config.json          the resolved profile, seed, data dir, weights dir, code version
    manifest.csv/.json   every image with class, sha256, perceptual hash, size, near-dup group
    split.json           train / val / test file lists (and counts per class)
    state.json           status of the run (running | interrupted | trained | evaluated | ...)
    train.log            log lines of the run
    members/<name>.keras the trained member (best epoch by validation macro-F1)
    members/<name>.json  its history (per epoch: loss, train acc, val acc, val macro-F1, the
                         predicted-class histogram in inference mode), timing, status
    eval/                metrics.json, report.md, PNG plots (written by ml_training.evaluate)

Every member is validated in inference mode (``training=False``) after every epoch; the best
epoch by validation macro-F1 is kept, and a member whose predictions in inference mode collapse
onto one class is flagged (``collapsed``) in its history and in the evaluation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ml_training import augment as aug
from ml_training import calibration
from ml_training import data as data_mod
from ml_training.calibration import Calibration
from ml_training.profiles import load_profile

logger = logging.getLogger("ml_training")

# How a member's "stopped" reason starts when its wall-clock cap ended training (the model card
# reads it back).
TIME_BUDGET_STOP = "time budget"

COLLAPSE_SHARE = 0.9  # a member predicting one class for >= 90% of a balanced-ish set collapsed


class TrainingInterrupted(Exception):
    """Ctrl-C during training: finished members are kept; ``--resume run_dir`` continues."""

    def __init__(self, run_dir: Path):
        super().__init__(f"training interrupted; resume with --resume {run_dir}")
        self.run_dir = run_dir


@dataclass
class RunContext:
    run_dir: Path
    config: dict
    manifest: data_mod.Manifest
    split: data_mod.Split

    @property
    def profile(self) -> dict:
        return self.config["profile"]

    @property
    def members_dir(self) -> Path:
        return self.run_dir / "members"

    def member_path(self, name: str) -> Path:
        return self.members_dir / f"{name}.keras"

    def member_info_path(self, name: str) -> Path:
        return self.members_dir / f"{name}.json"

    def member_done(self, name: str) -> bool:
        info = self.member_info_path(name)
        if not (info.is_file() and self.member_path(name).is_file()):
            return False
        return json.loads(info.read_text()).get("status") == "done"

    def write_state(self, status: str, **extra) -> None:
        state_path = self.run_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        state.update(extra)
        state["status"] = status
        state["updated_at"] = _now()
        state.setdefault("history", []).append({"status": status, "at": state["updated_at"]})
        state_path.write_text(json.dumps(state, indent=1))

    def read_state(self) -> dict:
        path = self.run_dir / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_run_dir(profile_name: str) -> Path:
    from django.conf import settings

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(settings.VAR_DIR) / "runs" / f"{stamp}-{profile_name}"


def machine_info() -> dict:
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def attach_log_file(run_dir: Path) -> logging.Handler:
    """Log to ``run_dir/train.log`` (once: a nested call returns a handler that does nothing)."""
    target = str((run_dir / "train.log").resolve())
    if any(getattr(h, "baseFilename", None) == target for h in logger.handlers):
        return logging.NullHandler()
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


# --- Preparing a run --------------------------------------------------------------------------


def prepare_run(
    *,
    data_dir: Path,
    profile: str | Path,
    seed: int = 42,
    run_dir: Path | None = None,
    weights_dir: Path | None = None,
    cv_folds: int | None = None,
    cv_fold: int | None = None,
) -> RunContext:
    """Create a run folder: resolved config, manifest (deduplicated) and split.

    ``cv_folds``/``cv_fold`` make the test split one fold of a stratified group k-fold
    (``data.split_manifest``); ``manage.py cv_report`` summarises the runs of all folds.
    """
    from inference.registry import code_version

    data_mod.check_cv(cv_folds, cv_fold)
    prof = load_profile(profile)
    run_dir = Path(run_dir) if run_dir else default_run_dir(prof["name"])
    if (run_dir / "config.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; use --resume to continue it")
    run_dir.mkdir(parents=True, exist_ok=True)
    if weights_dir is not None:
        check_weights_dir(prof, weights_dir)
    t0 = time.time()
    manifest = data_mod.build_manifest(data_dir)
    split = data_mod.split_manifest(
        manifest,
        seed=seed,
        val_fraction=prof["split"]["val_fraction"],
        test_fraction=prof["split"]["test_fraction"],
        cv_folds=cv_folds,
        cv_fold=cv_fold,
    )
    manifest.save(run_dir)
    split.save(run_dir, manifest)
    config = {
        "profile": prof,
        "seed": seed,
        "data_dir": str(Path(data_dir).resolve()),
        "data_root": manifest.root,
        "weights_dir": str(Path(weights_dir).resolve()) if weights_dir else None,
        "data_fingerprint": manifest.fingerprint(),
        "cv": {"folds": cv_folds, "fold": cv_fold} if cv_folds else None,
        "code_version": code_version(),
        "created_at": _now(),
        "manifest_seconds": round(time.time() - t0, 2),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    ctx = RunContext(run_dir, config, manifest, split)
    ctx.write_state("prepared", started_at=config["created_at"])
    return ctx


def open_run(run_dir: Path) -> RunContext:
    """Reopen an existing run folder (for --resume and for evaluation)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    config = json.loads(config_path.read_text())
    manifest = data_mod.Manifest.load(run_dir)
    split = data_mod.Split.load(run_dir, manifest)
    return RunContext(run_dir, config, manifest, split)


def check_weights_dir(profile: dict, weights_dir: Path) -> None:
    """Fail before any training when ImageNet weights were asked for but are not on disk."""
    from inference.architectures import imagenet_weights_path

    if not Path(weights_dir).is_dir():
        raise FileNotFoundError(f"--weights-dir {weights_dir} is not a folder")
    for m in profile["members"]:
        imagenet_weights_path(m["architecture"], int(m["input_size"]), weights_dir)


# --- Data for one member ----------------------------------------------------------------------


def load_images(paths: list[Path], preprocessing: dict, member_size: int | None = None):
    """Images as the serving engine feeds a member: float32 (N, m, m, 3) in [0, 255].

    ``inference.preprocessing.load_and_prepare`` makes the version's input (S × S); a member
    trained at another size m gets the same ``keras.layers.Resizing`` the fused serving model
    puts in front of it (``inference.engine.build_fused_model``).
    """
    from inference.preprocessing import load_and_prepare

    size = preprocessing["input_size"]
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = load_and_prepare(p, preprocessing)
    if member_size is None or member_size == size:
        return out.astype(np.float32)
    return resize_like_engine(out, member_size, preprocessing["interpolation"])


def resize_like_engine(images: np.ndarray, size: int, interpolation: str, batch: int = 256):
    import keras

    from inference.engine import member_resizing

    layer = member_resizing(size, int(images.shape[1]), interpolation)
    chunks = [
        keras.ops.convert_to_numpy(layer(images[i : i + batch].astype(np.float32)))
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(chunks).astype(np.float32)


def stratified_subset(indices: list[int], labels: np.ndarray, fraction: float, seed: int):
    if fraction >= 1.0:
        return list(indices)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels[indices]):
        idx = [i for i in indices if labels[i] == c]
        n = max(1, round(len(idx) * fraction))
        keep += rng.choice(idx, size=n, replace=False).tolist()
    return sorted(keep)


# --- Training ---------------------------------------------------------------------------------


def configure_tensorflow(*, threads: int | None, deterministic: bool) -> None:
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process (tests); keep the existing pools
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def train_run(ctx: RunContext, *, progress: bool = True, only: list[str] | None = None) -> dict:
    """Train every member not yet done; {member name: info}. Ctrl-C: TrainingInterrupted."""
    prof = ctx.profile
    configure_tensorflow(
        threads=prof.get("threads"), deterministic=bool(prof.get("deterministic", True))
    )
    ctx.members_dir.mkdir(exist_ok=True)
    handler = attach_log_file(ctx.run_dir)
    results = {}
    t_run = time.time()
    try:
        ctx.write_state("training")
        for index, member in enumerate(prof["members"]):  # index: part of the member's seed
            name = member["name"]
            if only and name not in only:
                continue
            if ctx.member_done(name):
                logger.info("%s: already trained in this run folder, skipped", name)
                results[name] = json.loads(ctx.member_info_path(name).read_text())
                continue
            results[name] = train_member(ctx, member, index=index, progress=progress)
        ctx.write_state("trained", train_seconds=round(time.time() - t_run, 1))
        return results
    except KeyboardInterrupt:
        ctx.write_state("interrupted")
        logger.warning("interrupted; finished members are kept in %s", ctx.run_dir)
        raise TrainingInterrupted(ctx.run_dir) from None
    finally:
        logger.removeHandler(handler)
        handler.close()


class LRPlan:
    """Linear warm-up then cosine decay, over a horizon that can shrink while training.

    The learning rate is set before every step from (step, total steps); when the wall-clock
    budget of a member will not allow the planned epochs, ``total_steps`` is cut and the cosine
    continues from the current point to the new end, so the member still ends annealed.
    """

    def __init__(self, member: dict, steps_per_epoch: int, epochs: int):
        self.lr = float(member["learning_rate"])
        self.constant = member["schedule"] == "constant"
        self.min_ratio = float(member["min_lr_ratio"])
        self.warmup = int(round(float(member["warmup_epochs"]) * steps_per_epoch))
        self.total_steps = max(1, epochs * steps_per_epoch)

    def __call__(self, step: int) -> float:
        if self.constant:
            return self.lr
        if self.warmup and step < self.warmup:
            return self.lr * (0.1 + 0.9 * step / self.warmup)
        span = max(1, self.total_steps - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * (self.min_ratio + (1 - self.min_ratio) * cosine)


def build_member_model(member: dict, num_classes: int, weights_dir, precision: str):
    """A member's Keras model as a profile describes it, built under ``precision``."""
    import keras

    from inference.architectures import build_member

    previous_policy = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(precision)
    try:
        return build_member(
            member["architecture"],
            input_size=int(member["input_size"]),
            num_classes=num_classes,
            weights_dir=weights_dir,
            dropout=float(member["dropout"]),
            bn_momentum=float(member["bn_momentum"]),
            name=member["name"],
        )
    finally:
        keras.config.set_dtype_policy(previous_policy)


def compile_member(model, member: dict, plan: LRPlan) -> None:
    """Optimiser, loss and metrics of a member's training (``plan`` gives the first LR)."""
    import keras

    model.compile(
        optimizer=_optimizer(member, plan(0)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=float(member["label_smoothing"])),
        metrics=["accuracy"],
        jit_compile=False,
        # Eager steps skip tracing the train function (NASNetLarge: over a minute): only for
        # tiny smoke runs, where tracing costs more than the few steps themselves.
        run_eagerly=bool(member.get("run_eagerly", False)),
    )


def _optimizer(member: dict, schedule):
    import keras

    kind = member["optimizer"]
    clip = member.get("clipnorm")
    common = {"learning_rate": float(schedule)}
    if clip:
        common["global_clipnorm"] = float(clip)
    if kind == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(member["weight_decay"]), **common)
    if kind == "adam":
        return keras.optimizers.Adam(**common)
    if kind == "sgd":
        return keras.optimizers.SGD(momentum=0.9, nesterov=True, **common)
    raise ValueError(f"unknown optimizer {kind!r}")


def predict_probs(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Inference-mode probabilities (``training=False``), float32 (N, classes)."""
    outs = [
        np.asarray(model(batch, training=False)) for batch in aug.eval_batches(images, batch_size)
    ]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def refresh_bn_statistics(
    model, images: np.ndarray, *, batches: int, batch_size: int, seed: int
) -> None:
    """Re-estimate BatchNorm moving statistics for the current weights ("precise BN").

    Forward passes in training mode over un-augmented training images, no weight update. Each
    BatchNorm layer's statistics become the plain average of its batch statistics over the
    ``batches`` batches (momentum k / (k + 1) at the k-th, from 0), drawn without replacement:
    every batch counts the same, and nothing of the old, lagging statistics is left. This is
    what keeps a from-scratch member from collapsing onto one class in inference mode while its
    training accuracy looks fine. With an exponential average instead (momentum 0.9 over 16
    batches), the statistics rest mostly on the last few batches and the same weights scored
    0.972 to 0.988 validation macro-F1 depending on the draw (MobileNetV2, cpu profile): the
    best epoch was then picked partly for a lucky draw.
    """
    from inference.architectures import batchnorm_layers

    if batches <= 0 or not len(images):
        return
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    batch_size = min(batch_size, len(images))
    order = np.random.default_rng(seed).permutation(len(images))
    reps = -(-batches * batch_size // len(images))  # whole permutations, wrapped around
    order = np.tile(order, reps)
    try:
        for k in range(batches):
            for layer in layers:
                layer.momentum = k / (k + 1)
            idx = order[k * batch_size : (k + 1) * batch_size]
            model(images[np.sort(idx)], training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def quick_scores(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> dict:
    from sklearn.metrics import f1_score

    pred = probs.argmax(axis=1)
    hist = np.bincount(pred, minlength=num_classes)
    return {
        "accuracy": float((pred == y_true).mean()),
        "macro_f1": float(
            f1_score(
                y_true, pred, average="macro", labels=list(range(num_classes)), zero_division=0
            )
        ),
        "pred_histogram": hist.tolist(),
        "collapsed": bool(hist.max() >= COLLAPSE_SHARE * len(pred)) if len(pred) else False,
    }


def train_member(ctx: RunContext, member: dict, *, index: int, progress: bool = True) -> dict:
    import keras
    from tqdm.auto import tqdm

    prof = ctx.profile
    name = member["name"]
    seed = int(ctx.config["seed"])
    member_seed = seed * 1000 + index
    keras.utils.set_random_seed(member_seed)
    num_classes = len(data_mod.CLASS_NAMES)
    pre = prof["preprocessing"]  # the version's config; the member's size is reached by Resizing
    member_size = int(member["input_size"])
    labels = ctx.manifest.labels

    t0 = time.time()
    train_idx = stratified_subset(
        ctx.split.train, labels, float(member["train_fraction"]), member_seed
    )
    x_train = load_images(ctx.manifest.paths(train_idx), pre, member_size)
    y_train = labels[train_idx]
    x_val = load_images(ctx.manifest.paths(ctx.split.val), pre, member_size)
    y_val = labels[ctx.split.val]
    load_seconds = time.time() - t0

    batch_size = int(member["batch_size"])
    steps = member.get("steps_per_epoch") or aug.steps_per_epoch(y_train, batch_size, num_classes)
    epochs = int(member["epochs"])
    crop = training_crop(member)
    ds = aug.balanced_train_dataset(
        x_train,
        y_train,
        batch_size=batch_size,
        seed=member_seed,
        num_classes=num_classes,
        augment=prof.get("augment"),
        augment_enabled=bool(member["augment"]),
        crop=crop,
    )
    weights_dir = ctx.config.get("weights_dir")
    precision = member.get("precision", "float32")

    model = build_member_model(
        {**member, "input_size": crop or member_size}, num_classes, weights_dir, precision
    )
    # What is validated, kept and saved: the member as it is served, in float32 at its own
    # input size. Training copies its weights in before every validation when it differs (a
    # training crop, or another training precision).
    served = model
    if crop or precision != "float32":
        served = build_member_model(member, num_classes, weights_dir, "float32")
    plan = LRPlan(member, steps, epochs)
    compile_member(model, member, plan)
    ds = ds.map(lambda x, y: (x, _one_hot(y, num_classes)))

    info = {
        "name": name,
        "architecture": member["architecture"],
        "input_size": int(member["input_size"]),
        "preprocessing": pre,
        "resized_to": member_size,
        "train_crop": crop,
        "member": member,
        "seed": member_seed,
        "precision": precision,
        "train_images": len(train_idx),
        "val_images": len(ctx.split.val),
        "steps_per_epoch": int(steps),
        "planned_epochs": epochs,
        "status": "training",
        "history": [],
        "started_at": _now(),
    }
    logger.info(
        "%s: %s at %d px, %d train / %d val images, %d epochs x %d steps (data %.1fs)",
        name,
        member["architecture"],
        member["input_size"],
        len(train_idx),
        len(ctx.split.val),
        epochs,
        steps,
        load_seconds,
    )
    best = {"macro_f1": -1.0, "epoch": 0, "weights": None}
    stale = 0
    it = iter(ds)
    t_train = time.time()
    max_seconds = float(member["max_minutes"]) * 60 if member.get("max_minutes") else None
    stopped = "completed"
    global_step = 0
    planned = epochs
    first_steps: list[float] = []
    for epoch in range(1, epochs + 1):
        if epoch > planned:
            stopped = f"{TIME_BUDGET_STOP} ({member['max_minutes']} min): {planned} epochs"
            break
        t_epoch = time.time()
        bar = tqdm(
            total=steps,
            desc=f"{name} epoch {epoch}/{epochs}",
            unit="batch",
            disable=not progress,
            leave=True,
            dynamic_ncols=True,
        )
        losses, accs = [], []
        for step in range(steps):
            x, y = next(it)
            model.optimizer.learning_rate = plan(global_step)
            global_step += 1
            t_step = time.time()
            out = model.train_on_batch(x, y, return_dict=True)
            if epoch == 1 and step < 2:
                # The first call traces the train function (NASNetLarge: minutes); the second
                # is a plain step. Their difference is the one-off cost left out of the
                # per-epoch estimate that plans the time budget.
                first_steps.append(time.time() - t_step)
            losses.append(float(out["loss"]))
            accs.append(float(out.get("accuracy", out.get("compile_metrics", 0.0))))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{np.mean(accs[-20:]):.3f}")
            bar.update(1)
        bar.close()
        model.reset_metrics()
        if served is not model:
            served.set_weights(model.get_weights())
        refresh_bn_statistics(
            served,
            x_train,
            batches=int(member.get("bn_refresh_batches", 16)),
            batch_size=batch_size,
            seed=member_seed + epoch,
        )
        val_probs = predict_probs(served, x_val)
        scores = quick_scores(y_val, val_probs, num_classes)
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "train_accuracy": float(np.mean(accs[-max(1, steps // 2) :])),
            "val_accuracy": scores["accuracy"],
            "val_macro_f1": scores["macro_f1"],
            "val_pred_histogram": scores["pred_histogram"],
            "val_collapsed": scores["collapsed"],
            "lr_end": float(plan(global_step)),
            "seconds": round(time.time() - t_epoch, 1),
        }
        info["history"].append(row)
        logger.info(
            "%s epoch %d/%d: loss %.4f train acc %.3f | val acc %.4f macro-F1 %.4f%s (%.0fs)",
            name,
            epoch,
            epochs,
            row["loss"],
            row["train_accuracy"],
            row["val_accuracy"],
            row["val_macro_f1"],
            " COLLAPSED" if row["val_collapsed"] else "",
            row["seconds"],
        )
        if progress:
            tqdm.write(
                f"{name} epoch {epoch}: val acc {row['val_accuracy']:.4f} "
                f"macro-F1 {row['val_macro_f1']:.4f} pred {row['val_pred_histogram']}"
                + (" COLLAPSED" if row["val_collapsed"] else "")
            )
        if scores["macro_f1"] > best["macro_f1"]:
            best = {"macro_f1": scores["macro_f1"], "epoch": epoch, "weights": served.get_weights()}
            stale = 0
        else:
            stale += 1
        if max_seconds:
            # Re-plan from the latest epoch's time (the first one without the train function's
            # tracing, a one-off):
            # the horizon shrinks when training is slower than hoped, and grows back (never past
            # the profile's epochs) when it speeds up; the cosine follows the new horizon.
            elapsed = time.time() - t_train
            per_epoch = row["seconds"] if epoch > 1 else elapsed - one_off_seconds(first_steps)
            fits = epoch + int((max_seconds - elapsed) // max(per_epoch, 1e-6))
            new_plan = min(epochs, max(epoch, fits))
            if new_plan != planned:
                planned = new_plan
                plan.total_steps = max(global_step, planned * steps)
                logger.info(
                    "%s: time budget %s min allows %d epochs; cosine horizon set to %d epochs",
                    name,
                    member["max_minutes"],
                    planned,
                    planned,
                )
                info["planned_epochs_after_budget"] = planned
        ctx.member_info_path(name).write_text(json.dumps(info, indent=1))
        if epoch >= int(member["min_epochs"]) and stale >= int(member["patience"]):
            stopped = f"early stopping (no better val macro-F1 for {stale} epochs)"
            break
    # Serve in float32 whatever the training precision (bfloat16 is slow on CPUs without
    # native support), at the member's input size whatever the training crop.
    model = served
    if best["weights"] is not None:
        model.set_weights(best["weights"])
    # The stored member's validation probabilities, kept current through the adjustments below.
    val_probs = predict_probs(model, x_val)
    final = quick_scores(y_val, val_probs, num_classes)
    if member.get("prior_correction"):
        # Balanced sampling trains the member for equal class priors; the images it will see
        # come with the data set's own class frequencies. Adding log(prior) to the softmax
        # layer's bias (post-hoc logit adjustment, Menon et al. 2021) restores that prior.
        # Kept only when it does not lower the validation macro-F1 (measured: it helped some
        # members and cost others a few validation images).
        counts = np.bincount(y_train, minlength=num_classes).astype(np.float64)
        log_prior = np.log(np.maximum(counts, 1) / counts.sum())
        shift = Calibration(temperature=1.0, bias=log_prior - log_prior.mean())
        result, val_probs = adjust_softmax_layer(model, shift, val_probs, x_val, y_val, num_classes)
        info["prior_correction"] = {
            "log_prior": log_prior.tolist(),
            "train_counts": counts.astype(int).tolist(),
            **result,
        }
        final = _log_adjustment(name, "prior correction", info["prior_correction"])
    if member.get("calibrate"):
        # A temperature and class bias fitted on the validation split (ml_training.calibration).
        fitted = calibration.fit(val_probs, y_val)
        result, val_probs = adjust_softmax_layer(
            model, fitted, val_probs, x_val, y_val, num_classes
        )
        info["calibration"] = {**fitted.to_json(), **result}
        final = _log_adjustment(
            name,
            f"calibration (T {fitted.temperature:.3f}, bias {np.round(fitted.bias, 2).tolist()})",
            info["calibration"],
        )
    model.save(ctx.member_path(name))
    info.update(
        status="done",
        stopped=stopped,
        best_epoch=best["epoch"],
        epochs_run=len(info["history"]),
        val=final,
        collapsed=final["collapsed"],
        train_seconds=round(time.time() - t_train, 1),
        data_seconds=round(load_seconds, 1),
        finished_at=_now(),
        sha256=_sha256(ctx.member_path(name)),
    )
    ctx.member_info_path(name).write_text(json.dumps(info, indent=1))
    logger.info(
        "%s: done in %.0fs, best epoch %d, val macro-F1 %.4f (%s)%s",
        name,
        info["train_seconds"],
        best["epoch"],
        final["macro_f1"],
        stopped,
        " — COLLAPSED in inference mode" if final["collapsed"] else "",
    )
    keras.backend.clear_session()
    return info


def adjust_softmax_layer(
    model, change: Calibration, probs: np.ndarray, x_val, y_val, num_classes: int
) -> tuple[dict, np.ndarray]:
    """Fold ``change`` (logits / T + b) into the member's softmax layer and keep it only when
    the validation macro-F1 does not drop. ``probs``: the member's validation probabilities
    without it. Returns the validation scores and negative log-likelihoods before and after and
    whether it was kept, and the validation probabilities of the member as it is left."""
    layer = model.get_layer("predictions")
    kernel, bias = layer.get_weights()
    before = quick_scores(y_val, probs, num_classes)
    layer.set_weights(list(change.fold_into_dense(kernel, bias)))
    changed = predict_probs(model, x_val)
    after = quick_scores(y_val, changed, num_classes)
    kept = after["macro_f1"] >= before["macro_f1"]
    if not kept:
        layer.set_weights([kernel, bias])
    result = {
        "val_before": before,
        "val_after": after,
        "val_nll_before": calibration.nll(probs, y_val),
        "val_nll_after": calibration.nll(changed, y_val),
        "kept": kept,
    }
    return result, changed if kept else probs


def _log_adjustment(name: str, what: str, result: dict) -> dict:
    """Log a softmax-layer adjustment; the member's validation scores after it."""
    logger.info(
        "%s: %s: val macro-F1 %.4f -> %.4f, NLL %.4f -> %.4f (%s)",
        name,
        what,
        result["val_before"]["macro_f1"],
        result["val_after"]["macro_f1"],
        result["val_nll_before"],
        result["val_nll_after"],
        "kept" if result["kept"] else "not kept",
    )
    return result["val_after"] if result["kept"] else result["val_before"]


def training_crop(member: dict) -> int | None:
    """The side of the random window a member trains on, or None (the whole image)."""
    crop = member.get("train_crop")
    if not crop or int(crop) >= int(member["input_size"]):
        return None
    return int(crop)


def one_off_seconds(first_steps: list[float]) -> float:
    """Tracing time in the first epoch: the first step's time minus a plain step's."""
    if len(first_steps) < 2:
        return 0.0
    return max(0.0, first_steps[0] - first_steps[1])


def _one_hot(y, num_classes):
    import tensorflow as tf

    return tf.one_hot(y, num_classes)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def member_specs(ctx: RunContext) -> list[dict]:
    """The members of a trained run, as ``register_version(members=...)`` takes them."""
    return [
        {
            "name": m["name"],
            "architecture": m["architecture"],
            "input_size": int(m["input_size"]),
            "path": ctx.member_path(m["name"]),
        }
        for m in ctx.profile["members"]
    ]
