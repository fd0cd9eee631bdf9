"""One member's training: its data and networks, the epochs (validated in inference mode after
each one, the best kept), the optional wall-clock budget, then the post-hoc steps and the saved
member with its record (``members/<name>.json``).

``train_member`` reads as the sequence; each phase is a function (or, for the epoch loop, a
small class holding what the epochs share).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from inference.checksums import sha256_file
from ml_training import augment as aug
from ml_training import data as data_mod
from ml_training import fine_tuning
from ml_training.member_data import load_images, stratified_subset, training_crop
from ml_training.member_model import (
    LRPlan,
    _one_hot,
    build_member_model,
    compile_member,
    predict_probs,
    served_network,
)
from ml_training.posthoc import graph_mode, post_hoc, quick_scores, refresh_bn_statistics
from ml_training.run_folder import RunContext, _now

logger = logging.getLogger("ml_training")

# How a member's "stopped" reason starts when its wall-clock cap ended training (the model card
# reads it back).
TIME_BUDGET_STOP = "time budget"


@dataclass
class MemberData:
    train_idx: list[int]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    seconds: float


@dataclass
class Networks:
    model: object  # what trains (maybe cropped input, maybe another precision)
    served: object  # what is validated, kept and saved: float32 at the member's input size
    plan: LRPlan
    dataset: object
    steps: int
    epochs: int


def train_member(ctx: RunContext, member: dict, *, index: int, progress: bool = True) -> dict:
    import keras

    member_seed = int(ctx.config["seed"]) * 1000 + index
    keras.utils.set_random_seed(member_seed)
    data = _load_member_data(ctx, member, member_seed)
    nets = _build_networks(ctx, member, data, member_seed)
    info = _new_record(ctx, member, data, nets, member_seed)
    loop = EpochLoop(ctx, member, data, nets, info, member_seed, progress)
    loop.run()
    model = nets.served  # float32 at the member's input size, whatever the training used
    if loop.best["weights"] is not None:
        model.set_weights(loop.best["weights"])
    final = post_hoc(member, model, data, info)
    model.save(ctx.member_path(member["name"]))
    _finish_record(ctx, member, info, loop, final, data)
    keras.backend.clear_session()
    return info


def _load_member_data(ctx: RunContext, member: dict, member_seed: int) -> MemberData:
    pre = ctx.profile["preprocessing"]  # the version's config; the member's size by Resizing
    size = int(member["input_size"])
    labels = ctx.manifest.labels
    t0 = time.time()
    train_idx = stratified_subset(
        ctx.split.train, labels, float(member["train_fraction"]), member_seed
    )
    return MemberData(
        train_idx=train_idx,
        x_train=load_images(ctx.manifest.paths(train_idx), pre, size),
        y_train=labels[train_idx],
        x_val=load_images(ctx.manifest.paths(ctx.split.val), pre, size),
        y_val=labels[ctx.split.val],
        seconds=time.time() - t0,
    )


def _build_networks(ctx: RunContext, member: dict, data: MemberData, member_seed: int):
    num_classes = len(data_mod.CLASS_NAMES)
    batch_size = int(member["batch_size"])
    steps = member.get("steps_per_epoch") or aug.steps_per_epoch(
        data.y_train, batch_size, num_classes
    )
    epochs = int(member["epochs"])
    crop = training_crop(member)
    dataset = aug.balanced_train_dataset(
        data.x_train,
        data.y_train,
        batch_size=batch_size,
        seed=member_seed,
        num_classes=num_classes,
        augment=ctx.profile.get("augment"),
        augment_enabled=bool(member["augment"]),
        crop=crop,
    )
    weights_dir = ctx.config.get("weights_dir")
    precision = member.get("precision", "float32")
    model = build_member_model(
        {**member, "input_size": crop or int(member["input_size"])},
        num_classes,
        weights_dir,
        precision,
    )
    served = served_network(model, member, num_classes, weights_dir)
    plan = LRPlan(member, steps, epochs)
    if fine_tuning.frozen_epochs(ctx, member):
        fine_tuning.freeze_backbone([model, served])  # keras-io: the new head first
    compile_member(model, member, plan)
    dataset = dataset.map(lambda x, y: (x, _one_hot(y, num_classes)))
    return Networks(model, served, plan, dataset, int(steps), epochs)


def _new_record(ctx, member, data: MemberData, nets: Networks, member_seed: int) -> dict:
    crop = training_crop(member)
    info = {
        "name": member["name"],
        "architecture": member["architecture"],
        "input_size": int(member["input_size"]),
        "preprocessing": ctx.profile["preprocessing"],
        "resized_to": int(member["input_size"]),
        "train_crop": crop,
        "member": member,
        "seed": member_seed,
        "precision": member.get("precision", "float32"),
        "train_images": len(data.train_idx),
        "val_images": len(ctx.split.val),
        "steps_per_epoch": nets.steps,
        "planned_epochs": nets.epochs,
        "status": "training",
        "history": [],
        "started_at": _now(),
    }
    logger.info(
        "%s: %s at %d px, %d train / %d val images, %d epochs x %d steps (data %.1fs)",
        member["name"],
        member["architecture"],
        member["input_size"],
        len(data.train_idx),
        len(ctx.split.val),
        nets.epochs,
        nets.steps,
        data.seconds,
    )
    return info


@dataclass
class EpochLoop:
    """The epochs of one member: train, validate the served copy in inference mode, keep the
    best by validation macro-F1, stop early, and (with ``max_minutes``) re-plan the horizon."""

    ctx: RunContext
    member: dict
    data: MemberData
    nets: Networks
    info: dict
    seed: int
    progress: bool
    best: dict = field(default_factory=lambda: {"macro_f1": -1.0, "epoch": 0, "weights": None})
    stopped: str = "completed"
    global_step: int = 0
    first_steps: list = field(default_factory=list)

    def run(self) -> None:
        member, nets = self.member, self.nets
        stale = 0
        self.iterator = iter(nets.dataset)
        self.started = time.time()
        self.planned = nets.epochs
        frozen = fine_tuning.frozen_epochs(self.ctx, member)
        for epoch in range(1, nets.epochs + 1):
            if frozen and epoch == frozen + 1:
                nets.plan = fine_tuning.start_fine_tuning(
                    nets, member, global_step=self.global_step, epochs_left=nets.epochs - frozen
                )
                self.info["fine_tuning_from_epoch"] = epoch
            if epoch > self.planned:
                self.stopped = (
                    f"{TIME_BUDGET_STOP} ({member['max_minutes']} min): {self.planned} epochs"
                )
                break
            row, scores = self._epoch(epoch)
            if scores["macro_f1"] > self.best["macro_f1"]:
                weights = nets.served.get_weights()
                self.best = {"macro_f1": scores["macro_f1"], "epoch": epoch, "weights": weights}
                stale = 0
            else:
                stale += 1
            if member.get("max_minutes"):
                self._replan(epoch, row)
            self.ctx.member_info_path(member["name"]).write_text(json.dumps(self.info, indent=1))
            if epoch >= int(member["min_epochs"]) and stale >= int(member["patience"]):
                self.stopped = f"early stopping (no better val macro-F1 for {stale} epochs)"
                break

    def _epoch(self, epoch: int) -> tuple[dict, dict]:
        t_epoch = time.time()
        losses, accs = self._train_steps(epoch)
        nets, member, data = self.nets, self.member, self.data
        nets.model.reset_metrics()
        if nets.served is not nets.model:
            nets.served.set_weights(nets.model.get_weights())
        refresh_bn_statistics(
            nets.served,
            data.x_train,
            batches=int(member.get("bn_refresh_batches", 16)),
            batch_size=int(member["batch_size"]),
            seed=self.seed + epoch,
            compiled=graph_mode(member),
        )
        probs = predict_probs(nets.served, data.x_val, compiled=graph_mode(member))
        scores = quick_scores(data.y_val, probs, len(data_mod.CLASS_NAMES))
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "train_accuracy": float(np.mean(accs[-max(1, nets.steps // 2) :])),
            "val_accuracy": scores["accuracy"],
            "val_macro_f1": scores["macro_f1"],
            "val_pred_histogram": scores["pred_histogram"],
            "val_collapsed": scores["collapsed"],
            "lr_end": float(nets.plan(self.global_step)),
            "seconds": round(time.time() - t_epoch, 1),
        }
        self.info["history"].append(row)
        self._log_epoch(row)
        return row, scores

    def _train_steps(self, epoch: int) -> tuple[list[float], list[float]]:
        from tqdm.auto import tqdm

        nets, name = self.nets, self.member["name"]
        bar = tqdm(
            total=nets.steps,
            desc=f"{name} epoch {epoch}/{nets.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=True,
            dynamic_ncols=True,
        )
        losses, accs = [], []
        for step in range(nets.steps):
            x, y = next(self.iterator)
            nets.model.optimizer.learning_rate = nets.plan(self.global_step)
            self.global_step += 1
            t_step = time.time()
            out = nets.model.train_on_batch(x, y, return_dict=True)
            if epoch == 1 and step < 2:
                # The first call traces the train function (NASNetLarge: minutes); the second
                # is a plain step. Their difference is the one-off cost left out of the
                # per-epoch estimate that plans the time budget.
                self.first_steps.append(time.time() - t_step)
            losses.append(float(out["loss"]))
            accs.append(float(out.get("accuracy", out.get("compile_metrics", 0.0))))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{np.mean(accs[-20:]):.3f}")
            bar.update(1)
        bar.close()
        return losses, accs

    def _log_epoch(self, row: dict) -> None:
        name, collapsed = self.member["name"], " COLLAPSED" if row["val_collapsed"] else ""
        logger.info(
            "%s epoch %d/%d: loss %.4f train acc %.3f | val acc %.4f macro-F1 %.4f%s (%.0fs)",
            name,
            row["epoch"],
            self.nets.epochs,
            row["loss"],
            row["train_accuracy"],
            row["val_accuracy"],
            row["val_macro_f1"],
            collapsed,
            row["seconds"],
        )
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(
                f"{name} epoch {row['epoch']}: val acc {row['val_accuracy']:.4f} "
                f"macro-F1 {row['val_macro_f1']:.4f} pred {row['val_pred_histogram']}{collapsed}"
            )

    def _replan(self, epoch: int, row: dict) -> None:
        """Re-plan from the latest epoch's time (the first one without the train function's
        tracing, a one-off): the horizon shrinks when training is slower than hoped, and grows
        back (never past the profile's epochs) when it speeds up; the cosine follows it."""
        max_seconds = float(self.member["max_minutes"]) * 60
        elapsed = time.time() - self.started
        per_epoch = row["seconds"] if epoch > 1 else elapsed - one_off_seconds(self.first_steps)
        fits = epoch + int((max_seconds - elapsed) // max(per_epoch, 1e-6))
        new_plan = min(self.nets.epochs, max(epoch, fits))
        if new_plan == self.planned:
            return
        self.planned = new_plan
        self.nets.plan.total_steps = max(self.global_step, new_plan * self.nets.steps)
        logger.info(
            "%s: time budget %s min allows %d epochs; cosine horizon set to %d epochs",
            self.member["name"],
            self.member["max_minutes"],
            new_plan,
            new_plan,
        )
        self.info["planned_epochs_after_budget"] = new_plan


def one_off_seconds(first_steps: list[float]) -> float:
    """The first step's extra time (tracing) beyond a plain step; 0 without two steps."""
    if len(first_steps) < 2:
        return 0.0
    return max(0.0, first_steps[0] - first_steps[1])


def _finish_record(ctx, member, info: dict, loop: EpochLoop, final: dict, data) -> None:
    name = member["name"]
    info.update(
        status="done",
        stopped=loop.stopped,
        best_epoch=loop.best["epoch"],
        epochs_run=len(info["history"]),
        val=final,
        collapsed=final["collapsed"],
        train_seconds=round(time.time() - loop.started, 1),
        data_seconds=round(data.seconds, 1),
        finished_at=_now(),
        sha256=sha256_file(ctx.member_path(name)),
    )
    ctx.member_info_path(name).write_text(json.dumps(info, indent=1))
    logger.info(
        "%s: done in %.0fs, best epoch %d, val macro-F1 %.4f (%s)%s",
        name,
        info["train_seconds"],
        loop.best["epoch"],
        final["macro_f1"],
        loop.stopped,
        " — COLLAPSED in inference mode" if final["collapsed"] else "",
    )
