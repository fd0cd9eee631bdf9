"""The fused serving model: every member of a version as one Keras model.

A shared ``Input`` (S, S, 3) float32 RGB in [0, 255] → the test-time views stacked on the batch
axis → per member a ``Resizing`` when the member was trained at another size → the member (which
starts with its own ``InputScaling``) → its probabilities (and pooled features) averaged over the
views → stacked to (N, members, classes). Training uses the same resize (``member_resizing``),
so a member sees exactly the pixels it will be served.

Imports Keras: only the worker, training and evaluation import this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from inference import preprocessing

# keras.layers.Resizing interpolation for each preprocessing interpolation name.
KERAS_INTERPOLATION = {
    "area": "area",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "nearest": "nearest",
    "lanczos": "lanczos3",
}


def member_resizing(size: int, from_size: int, interpolation: str, *, name=None):
    """The resize from the version's input size to a member's own input size.

    The one definition used by the fused serving model and by training, so a member trained
    at a smaller size sees exactly the pixels it will be served (antialiased when downscaling,
    which averages like OpenCV's INTER_AREA).
    """
    return keras.layers.Resizing(
        size,
        size,
        interpolation=KERAS_INTERPOLATION.get(interpolation, interpolation),
        antialias=size < from_size,
        name=name,
    )


def build_fused_model(
    member_models: Sequence[keras.Model],
    names: Sequence[str],
    input_size: int,
    *,
    interpolation: str = "bilinear",
    tta: str = "none",
) -> keras.Model:
    """One model computing every member: input (N, S, S, 3) float32 0..255 → (N, members, C),
    and, when every member has the ``avg_pool`` layer of ``inference.architectures``, a second
    output (N, sum of the members' feature sizes): their pooled features, concatenated in
    member order, for the out-of-domain detector (``inference.ood``). Same call, no second
    pass over the members.

    A member whose input size is not ``input_size`` gets a ``Resizing`` layer in front
    (``interpolation`` is a preprocessing interpolation name). Prefer members trained at the
    version's ``input_size``: TensorFlow's resize is close to, not identical with, OpenCV's.
    The member models are renamed ``member_<name>`` so that members of the same architecture
    can coexist. With test-time views (``tta``, see ``preprocessing.TTA_VIEWS``) the views are
    stacked along the batch axis, each member runs once on all of them and its probabilities
    (and features) are averaged over the views.
    """
    if len(member_models) != len(names) or not names:
        raise ValueError("build_fused_model needs one name per member and at least one member")
    if len(set(names)) != len(names):
        raise ValueError(f"member names must be unique, got {list(names)}")
    classes = {int(m.output_shape[-1]) for m in member_models}
    if len(classes) != 1:
        raise ValueError(f"members disagree on the number of classes: {sorted(classes)}")
    inputs = keras.Input(shape=(input_size, input_size, 3), dtype="float32", name="ensemble_image")
    views = len(preprocessing.TTA_VIEWS[tta])
    x_all = inputs
    if views > 1:
        x_all = keras.ops.concatenate(
            [_view(inputs, *flips) for flips in preprocessing.TTA_VIEWS[tta]], axis=0
        )
    with_features = all(_has_layer(m, "avg_pool") for m in member_models)
    probs_out, features_out = [], []
    for model, name in zip(member_models, names, strict=True):
        _, height, width, channels = model.input_shape
        if channels != 3:
            raise ValueError(f"member {name!r} takes {channels} channels, not 3")
        x = x_all
        if (height, width) != (input_size, input_size):
            x = member_resizing(height, input_size, interpolation, name=f"resize_{name}")(x_all)
        model.name = f"member_{name}"
        if with_features:
            both = keras.Model(
                model.inputs, [model.output, model.get_layer("avg_pool").output], name=f"{name}_f"
            )
            probs, features = both(x, training=False)
            features_out.append(_mean_over_views(features, views))
        else:
            probs = model(x, training=False)
        probs_out.append(_mean_over_views(probs, views))
    stacked = keras.ops.stack(probs_out, axis=1)
    if with_features:
        outputs = [stacked, keras.ops.concatenate(features_out, axis=1)]
        return keras.Model(inputs, outputs, name="fused_ensemble")
    return keras.Model(inputs, stacked, name="fused_ensemble")


def serving_function(fused: keras.Model, input_size: int):
    """The fused model as one ``tf.function`` over any batch size: traced once (at warm-up).

    ``predict_on_batch`` traces per input shape and, after the second shape, once more for a
    generic batch: a worker warmed up with one image paid a second trace of the whole ensemble
    (about 10 s on 2 cores) on its first batch of several images, in the middle of a case. A
    fixed signature with an unknown batch size makes the warm-up trace the only one.
    """
    import tensorflow as tf

    # TensorFlow's graph remapper (a grappler pass fusing e.g. convolution, bias and add) fails
    # on the folded graph ("remapper failed: ... Mutation::Apply error", logged at ERROR level
    # at every start, the pass then dropped for the whole graph): TensorFlow 2.21 fuses
    # convolution + bias + add + ReLU even when the add also feeds another layer, as 11 of
    # Xception's and 4 of NASNetLarge's residual adds do once BatchNormalization is folded.
    # It buys little here: on 2 cores (one-off scripts) the v1 serving model ran 4.95 images/s
    # at batch 16 without it and 4.99 with the failed pass on machine C, 5.52 and 5.54 on D;
    # with those ReLUs written as max(x, 0) the pass ran on the whole graph and gained 3 % on
    # machine E (README, Performance). Turned off for the whole process (evaluation in a
    # training process included: nothing trains after it there), so that the worker's log
    # carries no false alarm.
    tf.config.optimizer.set_experimental_options({"remapping": False})
    signature = [tf.TensorSpec((None, input_size, input_size, 3), tf.float32)]

    @tf.function(input_signature=signature)
    def serve(batch):
        return fused(batch, training=False)

    return serve


def _has_layer(model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _mean_over_views(x, views: int):
    if views == 1:
        return x
    return keras.ops.mean(keras.ops.reshape(x, (views, -1, int(x.shape[-1]))), axis=0)


def _view(x, flip_rows: bool, flip_cols: bool):
    if flip_rows:
        x = keras.ops.flip(x, axis=1)
    return keras.ops.flip(x, axis=2) if flip_cols else x
