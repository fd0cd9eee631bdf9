"""Fine-tuning a member that starts from ImageNet weights, after the keras-io recipe
("Transfer learning & fine-tuning"; "Image classification via fine-tuning with EfficientNet"):

1. the backbone frozen (``trainable = False``: its BatchNorm layers run in inference mode), the
   new head trained for ``frozen_epochs`` at the member's learning rate;
2. then the top ``fine_tune_layers`` layers of the backbone unfrozen, every BatchNorm layer
   kept frozen (so in inference mode: its ImageNet statistics are not overwritten by small
   batches of smears), and the model recompiled at the low ``fine_tune_learning_rate``, with its
   own warm-up and cosine over the remaining epochs.

Profiles switch it on per member with ``frozen_epochs`` > 0 (the ``paper`` profile does); it
applies when the run starts from ImageNet weights (``--weights-dir``): a from-scratch member
never freezes anything. Both copies of a
member (the one that trains and the served float32 copy that is validated) get the same flags,
so their weights line up when copied.
"""

from __future__ import annotations

import logging

from ml_training.member_model import LRPlan, compile_member

logger = logging.getLogger("ml_training")


class ShiftedPlan:
    """A learning-rate plan that starts at global step ``offset`` (the fine-tuning phase's)."""

    def __init__(self, plan: LRPlan, offset: int):
        self.plan, self.offset = plan, offset

    def __call__(self, step: int) -> float:
        return self.plan(step - self.offset)

    @property
    def total_steps(self) -> int:
        return self.offset + self.plan.total_steps

    @total_steps.setter
    def total_steps(self, value: int) -> None:  # the wall-clock safety net re-plans the horizon
        self.plan.total_steps = max(1, value - self.offset)


def frozen_epochs(ctx, member: dict) -> int:
    """The member's frozen-backbone epochs: its ``frozen_epochs`` when the run starts from
    ImageNet weights (``--weights-dir``), else 0 (a random backbone is not worth freezing)."""
    if not ctx.config.get("weights_dir"):
        return 0
    return int(member.get("frozen_epochs") or 0)


def freeze_backbone(models) -> None:
    """Phase 1: every backbone layer frozen (BatchNorm in inference mode); the head trains."""
    for model in _distinct(models):
        model.get_layer("backbone").trainable = False


def unfreeze_top(models, layers: int) -> int:
    """Phase 2: the top ``layers`` layers of the backbone trainable, BatchNorm layers frozen.
    Returns how many layers hold weights that now train (per model)."""
    import keras

    count = 0
    for model in _distinct(models):
        backbone = model.get_layer("backbone")
        backbone.trainable = True
        top = backbone.layers[-layers:] if layers > 0 else []
        count = 0
        for layer in backbone.layers:
            train = layer in top and not isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = train
            count += bool(train and layer.weights)
    return count


def start_fine_tuning(nets, member: dict, *, global_step: int, epochs_left: int):
    """Switch ``nets`` (``member_training.Networks``) to phase 2; the new learning-rate plan."""
    layers = int(member.get("fine_tune_layers") or 0)
    trained = unfreeze_top([nets.model, nets.served], layers)
    tuned = {**member, "learning_rate": float(member["fine_tune_learning_rate"])}
    plan = ShiftedPlan(LRPlan(tuned, nets.steps, epochs_left), global_step)
    compile_member(nets.model, tuned, plan.plan)
    logger.info(
        "%s: fine-tuning the top %d backbone layers (%d with weights; BatchNorm frozen) at "
        "learning rate %g for %d epochs",
        member["name"],
        layers,
        trained,
        tuned["learning_rate"],
        epochs_left,
    )
    return plan


def _distinct(models):
    seen = []
    for model in models:
        if all(model is not other for other in seen):
            seen.append(model)
    return seen
