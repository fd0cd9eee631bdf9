"""A member for serving: every BatchNormalization that follows a convolution folded into it.

In inference a BatchNormalization is an affine map per channel, ``y = (x - mean) / sqrt(var +
eps) * gamma + beta``; after a convolution it can be folded into the convolution's kernel and
bias (``W' = W * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``), the
standard inference rewrite (Jacob et al., 2018, section 3.2). The folded member computes the
same function up to float32 rounding with fewer layers, so it loads, traces and runs faster
(the figures are in ``inference.serving_model``).

Imports Keras: only the worker (through ``inference.serving_model``), training and tests.
"""

from __future__ import annotations

import keras
import numpy as np

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def fold_batch_norm(model: keras.Model) -> tuple[keras.Model, int]:
    """A copy of the functional ``model`` (nested models included) with each BatchNormalization
    that directly follows a linear convolution used only by it folded into that convolution;
    and how many were folded. The copy has layers of its own (``model`` is left intact), with
    the same names, so ``get_layer`` finds the same layers (a folded BatchNormalization is
    gone)."""
    pairs = _foldable(model)
    folded_bns = {id(bn) for bn in pairs.values()}
    copies: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
    skipped: set[int] = set()  # the copies of the folded BatchNormalization layers

    def clone_layer(layer):
        config = layer.get_config()
        if id(layer) in pairs:
            config["use_bias"] = True
        new = type(layer).from_config(config)
        copies.append((layer, new))
        if id(layer) in folded_bns:
            skipped.add(id(new))
        return new

    def call_layer(layer, *args, **kwargs):  # ``layer`` is a copy
        if id(layer) in skipped:
            return args[0]
        return layer(*args, **kwargs)

    copy = keras.models.clone_model(
        model, clone_function=clone_layer, call_function=call_layer, recursive=True
    )
    for old, new in copies:
        if id(old) in pairs:
            new.set_weights(_folded_weights(old, pairs[id(old)]))
        elif id(old) not in folded_bns and old.weights:
            new.set_weights(old.get_weights())
    return copy, len(pairs)


def _foldable(model: keras.Model) -> dict[int, keras.layers.BatchNormalization]:
    """``{id(convolution): its BatchNormalization}`` over ``model`` and its nested functional
    models (Keras does not pass the call function into a nested ``Sequential``: not there)."""
    pairs = {}
    outputs = {id(t) for t in model.outputs}
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            continue
        if isinstance(layer, keras.Model):
            pairs.update(_foldable(layer))
            continue
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if len(layer._inbound_nodes) != 1 or layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        source = layer.input._keras_history.operation
        if (
            isinstance(source, _CONVOLUTIONS)
            and source.data_format == "channels_last"
            and source.activation is keras.activations.linear
            and len(source._inbound_nodes) == 1
            and len(source._outbound_nodes) == 1
            and id(source.output) not in outputs  # a model output must stay as it is
        ):
            pairs[id(source)] = layer
    return pairs


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """The convolution's weights with ``bn`` folded in (its kernel(s) and a bias)."""
    mean = np.asarray(bn.moving_mean, np.float64)
    scale = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(mean)
    offset = np.asarray(bn.beta, np.float64) if bn.center else np.zeros_like(mean)
    s = scale / np.sqrt(np.asarray(bn.moving_variance, np.float64) + bn.epsilon)
    weights = [np.asarray(w, np.float64) for w in conv.get_weights()]
    bias = weights.pop() if conv.use_bias else np.zeros_like(mean)
    if isinstance(conv, keras.layers.SeparableConv2D):  # depthwise kernel, pointwise kernel
        kernels = [weights[0], weights[1] * s]
    elif isinstance(conv, keras.layers.DepthwiseConv2D):  # (h, w, in, multiplier)
        kernel = weights[0]
        kernels = [kernel * s.reshape(kernel.shape[2], kernel.shape[3])]
    else:  # (h, w, in / groups, out)
        kernels = [weights[0] * s]
    return [k.astype(np.float32) for k in (*kernels, (bias - mean) * s + offset)]
