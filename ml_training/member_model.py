"""A member's network, optimiser and learning-rate plan, and TensorFlow's threads and
determinism: what ``train_member`` builds before its first epoch."""

from __future__ import annotations

import math
import weakref

import numpy as np

from ml_training import augment as aug


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


def served_network(model, member: dict, num_classes: int, weights_dir):
    """What is validated, kept and saved: ``model`` itself, or a float32 copy at the member's
    input size when training uses a crop or another precision (training copies its weights
    into it before every validation)."""
    from ml_training.member_data import training_crop

    if training_crop(member) or member.get("precision", "float32") != "float32":
        return build_member_model(member, num_classes, weights_dir, "float32")
    return model


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


def predict_probs(
    model, images: np.ndarray, batch_size: int = 64, *, compiled: bool = True
) -> np.ndarray:
    """Inference-mode probabilities (``training=False``), float32 (N, classes).

    ``compiled``: through one graph per model and input shape (``graph_function``), traced on
    the first call and reused by every later one (each epoch's validation, the post-hoc
    adjustments); eager calls cost 1.5 to 3.3 times as much on 2 cores (the cpu profile's
    members, 368 images). The smoke profile, which runs eagerly, keeps eager calls: there a
    trace would cost more than it saves."""
    call = model
    if compiled:
        call = graph_function(model, "inference", (None, *np.shape(images)[1:]), _inference_call)
    outs = [np.asarray(call(batch)) for batch in aug.eval_batches(images, batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def _inference_call(model):
    return lambda x: model(x, training=False)


# model -> {(purpose, input shape): tf.function}. Weak keys, and functions that hold the model
# only weakly, so a member's graphs go with its model.
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def graph_function(model, purpose, shape: tuple, build):
    """One ``tf.function`` of ``build(model)`` per model, purpose (any hashable: whatever the
    traced graph depends on beyond the weights) and float32 input ``shape``
    (batch dimension None): traced once, whatever the batch size, and reused across epochs."""
    import tensorflow as tf

    key = (purpose, tuple(shape))
    graphs = _GRAPHS.setdefault(model, {})
    if key not in graphs:
        ref = weakref.ref(model)
        spec = tf.TensorSpec(shape, tf.float32)
        graphs[key] = tf.function(lambda x: build(ref())(x), input_signature=[spec])
    return graphs[key]


def _one_hot(y, num_classes):
    import tensorflow as tf

    return tf.one_hot(y, num_classes)
